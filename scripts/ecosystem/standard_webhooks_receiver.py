"""Delivers signed envelopes from a real `hookline serve` to a receiver that verifies them with the
official `standardwebhooks` package (not hookline's code), before, during and after a rotation of
the config's signing secret."""

import base64
import http.server
import json
import os
import sys
import threading

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hookline_proc import Hookline  # noqa: E402

DEADLINE = 20.0


class Received:
    def __init__(self):
        self.requests = []
        self.changed = threading.Condition()

    def wait_for_hook(self, hook_id):
        def find():
            for headers, body in self.requests:
                if hook_id in [h["hookId"] for h in json.loads(body)["hooks"]]:
                    return headers, body
            return None
        with self.changed:
            if not self.changed.wait_for(find, timeout=DEADLINE):
                raise AssertionError(f"hook {hook_id} did not arrive within {DEADLINE}s")
            return find()


def start_receiver(received):
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            headers = {k.lower(): v for k, v in self.headers.items()}
            with received.changed:
                received.requests.append((headers, body))
                received.changed.notify_all()
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def new_secret():
    return "whsec_" + base64.b64encode(os.urandom(32)).decode()


def verifies(secret, headers, body):
    try:
        Webhook(secret).verify(body, headers)
        return True
    except WebhookVerificationError:
        return False


def main():
    results = []

    def check(name, ok):
        results.append(ok)
        print(("ok     " if ok else "FAILED ") + name, flush=True)

    received = Received()
    receiver = start_receiver(received)
    url = f"http://127.0.0.1:{receiver.server_address[1]}/hooks"
    with Hookline("--allow-private-targets") as srv:
        app_key, secret_key = srv.create_app_key("standard-webhooks")
        first = new_secret()
        cfg = srv.expect(201, "POST", f"/v1/appkeys/{app_key}/webhook-configs", secret=secret_key, body={
            "productName": "SMS", "events": ["UNSUBSCRIBE"], "url": url, "signature": "sig",
            "signingSecret": first})["webhookConfig"]
        rotate = f"/v1/appkeys/{app_key}/webhook-configs/{cfg['webhookConfigId']}/signing-secret/rotate"

        def deliver(n):
            ids = srv.expect(202, "POST", f"/v1/appkeys/{app_key}/events", secret=secret_key, body={
                "productName": "SMS", "event": "UNSUBSCRIBE",
                "hooks": [{"recipientNo": f"0101234{n:04d}"}]})["hookIds"]
            return received.wait_for_hook(ids[0])

        headers, body = deliver(1)
        check("before rotation: the secret verifies", verifies(first, headers, body))
        check("before rotation: another secret does not", not verifies(new_secret(), headers, body))
        check("webhook-id is the hooksId", headers.get("webhook-id") == json.loads(body)["hooksId"])

        second = srv.expect(200, "POST", rotate, secret=secret_key,
                            body={"gracePeriod": "1h"})["signingSecret"]
        headers, body = deliver(2)
        check("during rotation: two signatures", len(headers["webhook-signature"].split()) == 2)
        check("during rotation: the old secret verifies", verifies(first, headers, body))
        check("during rotation: the new secret verifies", verifies(second, headers, body))

        third = new_secret()
        srv.expect(200, "POST", rotate, secret=secret_key,
                   body={"signingSecret": third, "gracePeriod": "0s"})
        headers, body = deliver(3)
        check("after a rotation without grace: one signature",
              len(headers["webhook-signature"].split()) == 1)
        check("after a rotation without grace: the new secret verifies", verifies(third, headers, body))
        check("after a rotation without grace: the old secret does not", not verifies(second, headers, body))
    receiver.shutdown()
    failed = results.count(False)
    print(f"standard-webhooks: {len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
