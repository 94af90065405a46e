"""Starts a real `hookline serve` for the ecosystem tests and talks to its API (stdlib only)."""

import json
import os
import subprocess
import tempfile
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BINARY = os.path.join(ROOT, "target", "debug", "hookline")


class Hookline:
    def __init__(self, *extra_args, admin_token="ecosystem-admin-token"):
        self.admin_token = admin_token
        self.data_dir = tempfile.TemporaryDirectory(prefix="hookline-eco-")
        self.stderr = open(os.path.join(self.data_dir.name, "stderr.log"), "wb")
        env = dict(os.environ, HOOKLINE_ADMIN_TOKEN=admin_token, NO_COLOR="1")
        self.proc = subprocess.Popen(
            [BINARY, "serve", "--listen", "127.0.0.1:0", "--data-dir",
             os.path.join(self.data_dir.name, "data"), *extra_args],
            stdout=subprocess.PIPE, stderr=self.stderr, env=env)
        # The one stdout line says the server is ready and where.
        line = self.proc.stdout.readline().decode()
        if not line.startswith("hookline listening on "):
            self.stop()
            raise RuntimeError(f"hookline did not start: {line!r}\n{self.stderr_text()}")
        self.base = line.split()[-1].strip()

    def stderr_text(self):
        self.stderr.flush()
        with open(self.stderr.name, encoding="utf-8", errors="replace") as f:
            return f.read()[-4000:]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.stderr.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
        self.data_dir.cleanup()

    def call(self, method, path, body=None, secret=None, admin=False):
        headers = {}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if secret:
            headers["X-Secret-Key"] = secret
        if admin:
            headers["Authorization"] = f"Bearer {self.admin_token}"
        req = urllib.request.Request(self.base + path, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.status, json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")

    def expect(self, status, method, path, **kw):
        got, body = self.call(method, path, **kw)
        if got != status:
            raise AssertionError(f"{method} {path}: want {status}, got {got}: {body}\n{self.stderr_text()}")
        return body

    def create_app_key(self, name):
        body = self.expect(201, "POST", "/v1/appkeys", body={"name": name}, admin=True)
        return body["appKey"]["appKey"], body["appKey"]["secretKey"]
