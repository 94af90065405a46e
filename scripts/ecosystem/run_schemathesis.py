"""Runs schemathesis against a live `hookline serve` and fails on any 5xx or any answer that
breaks the served OpenAPI document.

Run inside a fresh network namespace (scripts/test.sh does `unshare -n`): schemathesis makes up
webhook URLs, and the `test` route sends to them; in the namespace nothing but loopback exists,
so no request can leave the machine.
"""

import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hookline_proc import ROOT, Hookline  # noqa: E402

VENV_BIN = os.path.dirname(sys.executable)
CHECKS = ",".join([
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "response_headers_conformance",
])


def main():
    max_examples = os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "25")
    max_time = os.environ.get("SCHEMATHESIS_MAX_TIME", "60")
    with Hookline() as srv:
        app_key, secret = srv.create_app_key("schemathesis")
        # A real config and delivery, so the id routes are exercised beyond 404.
        cfg = srv.expect(201, "POST", f"/v1/appkeys/{app_key}/webhook-configs", secret=secret, body={
            "productName": "SMS", "events": ["UNSUBSCRIBE"], "url": "http://127.0.0.1:9/hooks",
            "signature": "sig", "retrySchedule": ["24h"], "timeoutMs": 500,
        })["webhookConfig"]
        srv.expect(202, "POST", f"/v1/appkeys/{app_key}/events", secret=secret, body={
            "productName": "SMS", "event": "UNSUBSCRIBE", "hooks": [{"recipientNo": "01000000000"}]})
        deliveries = []
        for _ in range(200):
            deliveries = srv.expect(200, "GET", f"/v1/appkeys/{app_key}/deliveries", secret=secret)["deliveries"]
            if deliveries:
                break
        if not deliveries:
            raise AssertionError("no delivery appeared")
        with tempfile.TemporaryDirectory() as tmp:
            config = os.path.join(tmp, "schemathesis.toml")
            with open(config, "w") as f:
                f.write(f'''
[auth.openapi.secretKey]
api_key = "{secret}"

[auth.openapi.adminToken]
bearer = "{srv.admin_token}"

[parameters]
"path.appKey" = "{app_key}"
"path.webhookConfigId" = "{cfg['webhookConfigId']}"
"path.hooksId" = "{deliveries[0]['hooksId']}"
"path.hookId" = "{deliveries[0]['hookIds'][0]}"
''')
            report = os.path.join(ROOT, "target", "test-artifacts", "schemathesis")
            os.makedirs(report, exist_ok=True)
            cmd = [
                os.path.join(VENV_BIN, "schemathesis"), "--config-file", config, "run",
                srv.base + "/openapi.json",
                "--checks", CHECKS,
                "--phases", "examples,coverage,fuzzing",
                "--max-examples", max_examples,
                "--max-time", max_time,
                # One worker: hypothesis's lambda descriptions race in CPython 3.11's ast module.
                "--workers", "1",
                # Rotating the secret key would lock the run out of every other route; the
                # acceptance tests cover it.
                "--exclude-path-regex", "secret-key/rotate$",
                "--request-timeout", "10",
                "--seed", os.environ.get("SCHEMATHESIS_SEED", "20260131"),
                "--no-shrink",
                "--warnings", "off",
                "--report", os.environ.get("SCHEMATHESIS_REPORT", "junit"),
                "--report-dir", report,
            ]
            print("+", " ".join(cmd), flush=True)
            # cwd: schemathesis keeps a cache directory in its working directory.
            code = subprocess.call(cmd, cwd=tmp)
        if srv.proc.poll() is not None:
            print("hookline exited during the run:\n" + srv.stderr_text())
            return 1
        if code != 0:
            print("hookline's last log lines:\n" + srv.stderr_text())
        return code


if __name__ == "__main__":
    sys.exit(main())
