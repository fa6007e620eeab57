"""Incoming webhooks at the URL get_webhook_url() hands out: POST
/webhook/<integration> checks the integration's signature (GitHub, Slack,
generic HMAC-SHA256), records the delivery durably, and forwards it to
webhook_forward_url exactly as received, with retries and a delivery id;
forged deliveries get 401 and are counted; GET /webhooks lists deliveries.
"""

import hashlib
import hmac
import json
import time
import unittest
import urllib.request

from harness import DaemonTest, wait_for

NANGO = """
integrations:
    github-app:
        provider: local-test
    slack-app:
        provider: local-test
    custom-app:
        provider: local-test
    open-app:
        provider: local-test
"""

GITHUB_SECRET = "gh-secret-é"
SLACK_SECRET = "slack-signing-secret"
CUSTOM_SECRET = "custom"


def sign(secret, data):
    return hmac.new(secret.encode(), data, hashlib.sha256).hexdigest()


class WebhookTest(DaemonTest):
    def settings(self, **extra):
        s = {
            "webhook_forward_url": f"http://127.0.0.1:{self.provider.port}/hooks",
            "webhook_retry_base_ms": 20,
            "webhook_max_attempts": 3,
            "webhook_secrets": {
                "github-app": {"scheme": "github", "secret": GITHUB_SECRET},
                "slack-app": {"scheme": "slack", "secret": SLACK_SECRET},
                "custom-app": {"scheme": "hmac-sha256", "secret": CUSTOM_SECRET, "header": "X-Signature"},
            },
        }
        s.update(extra)
        return s

    def post(self, d, integration, body, headers):
        """A provider's delivery: no bearer key."""
        req = urllib.request.Request(f"{d.url}/webhook/{integration}", data=body, method="POST",
                                     headers=dict({"Content-Type": "application/json"}, **headers))
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    def deliveries(self, d, **query):
        q = "&".join(f"{k}={v}" for k, v in query.items())
        status, _, doc = d.request("GET", "/webhooks" + ("?" + q if q else ""))
        self.assertEqual(status, 200, doc)
        return doc

    def metric(self, d, result):
        status, _, text = d.request("GET", "/metrics")
        self.assertEqual(status, 200)
        line = f'evscript_webhooks_total{{result="{result}"}} '
        return int(next(ln for ln in text.splitlines() if ln.startswith(line))[len(line):])

    def test_signed_github_delivery_is_forwarded_exactly_and_a_forged_one_refused(self):
        self.provider.route("POST", "/hooks", {"status": 204})
        d = self.daemon(NANGO, settings=self.settings())
        # bytes a re-serialization would change: spacing, key order, unicode escapes
        body = b'{"zeta": 1,  "action":"opened", "text":"caf\\u00e9 \xe2\x9c\x93"}\n'
        headers = {"X-GitHub-Event": "issues", "X-GitHub-Delivery": "gh-1",
                   "X-Hub-Signature-256": "sha256=" + sign(GITHUB_SECRET, body)}
        status, doc = self.post(d, "github-app", body, headers)
        self.assertEqual(status, 200, doc)
        delivery_id = doc["id"]
        got = wait_for(lambda: self.provider.received("POST", "/hooks"), what="the forward")
        self.assertEqual(len(got), 1)
        fwd = got[0]
        self.assertEqual(fwd["body"], body)
        self.assertEqual(fwd["headers"]["x-github-event"], "issues")
        self.assertEqual(fwd["headers"]["x-github-delivery"], "gh-1")
        self.assertEqual(fwd["headers"]["x-hub-signature-256"], headers["X-Hub-Signature-256"])
        self.assertEqual(fwd["headers"]["content-type"], "application/json")
        self.assertEqual(fwd["headers"]["x-evscript-delivery-id"], str(delivery_id))
        self.assertEqual(fwd["headers"]["x-evscript-integration"], "github-app")
        listed = wait_for(lambda: [x for x in self.deliveries(d)["deliveries"]
                                   if x["id"] == delivery_id and x["status"] == "delivered"] or None)
        self.assertEqual(listed[0]["attempts"], 1)
        self.assertEqual(listed[0]["integration"], "github-app")

        forged = body.replace(b"opened", b"closed")
        status, doc = self.post(d, "github-app", forged, headers)
        self.assertEqual(status, 401, doc)
        self.assertEqual(doc["error"]["code"], "invalid_signature")
        status, doc = self.post(d, "github-app", body, {"X-GitHub-Event": "issues"})
        self.assertEqual(status, 401, doc)
        self.assertEqual(self.metric(d, "bad_signature"), 2)
        self.assertEqual(self.metric(d, "received"), 1)
        self.assertEqual(len(self.deliveries(d)["deliveries"]), 1, "refused deliveries are not recorded")
        self.assertEqual(len(self.provider.received("POST", "/hooks")), 1)

    def test_slack_and_generic_hmac_signatures(self):
        self.provider.route("POST", "/hooks", {"status": 200})
        d = self.daemon(NANGO, settings=self.settings())
        body = b"token=x&team_id=T1&event=message"
        ts = str(int(time.time()))
        good = {"X-Slack-Request-Timestamp": ts,
                "X-Slack-Signature": "v0=" + sign(SLACK_SECRET, f"v0:{ts}:".encode() + body)}
        self.assertEqual(self.post(d, "slack-app", body, good)[0], 200)
        # Slack's URL check: the challenge comes back, nothing is recorded or forwarded
        check = b'{"token":"t","challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P",' \
                b'"type":"url_verification"}'
        signed = {"X-Slack-Request-Timestamp": ts,
                  "X-Slack-Signature": "v0=" + sign(SLACK_SECRET, f"v0:{ts}:".encode() + check)}
        self.assertEqual(self.post(d, "slack-app", check, signed),
                         (200, {"challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"}))
        self.assertEqual(self.post(d, "slack-app", check, {})[0], 401, "the check is signed too")
        self.assertEqual(len(self.deliveries(d, integration="slack-app")["deliveries"]), 1)
        old = str(int(time.time()) - 3600)
        stale = {"X-Slack-Request-Timestamp": old,
                 "X-Slack-Signature": "v0=" + sign(SLACK_SECRET, f"v0:{old}:".encode() + body)}
        status, doc = self.post(d, "slack-app", body, stale)
        self.assertEqual(status, 401)
        self.assertIn("5 minutes", doc["error"]["message"])

        self.assertEqual(self.post(d, "custom-app", body, {"X-Signature": sign(CUSTOM_SECRET, body)})[0], 200)
        self.assertEqual(self.post(d, "custom-app", body,
                                   {"X-Signature": "sha256=" + sign(CUSTOM_SECRET, body)})[0], 200)
        self.assertEqual(self.post(d, "custom-app", body, {"X-Signature": sign("wrong", body)})[0], 401)
        # no secret configured: accepted as is; unknown integration: 404
        self.assertEqual(self.post(d, "open-app", body, {})[0], 200)
        status, doc = self.post(d, "nope", body, {})
        self.assertEqual((status, doc["error"]["code"]), (404, "unknown_provider_config"))
        wait_for(lambda: len(self.provider.received("POST", "/hooks")) == 4 or None, what="4 forwards")
        per = self.deliveries(d, integration="custom-app")["deliveries"]
        self.assertEqual(len(per), 2)

    def test_retries_with_the_same_delivery_id_then_gives_up(self):
        self.provider.route("POST", "/hooks", {"status": 503}, {"status": 503}, {"status": 200})
        d = self.daemon(NANGO, settings=self.settings())
        status, doc = self.post(d, "open-app", b"{}", {})
        self.assertEqual(status, 200, doc)
        got = wait_for(lambda: len(self.provider.received("POST", "/hooks")) >= 3 or None, what="3 attempts")
        got = self.provider.received("POST", "/hooks")
        self.assertEqual({g["headers"]["x-evscript-delivery-id"] for g in got}, {str(doc["id"])})
        # backoff: the second wait is at least twice the base
        self.assertGreaterEqual(got[2]["time"] - got[1]["time"], 0.04)
        item = wait_for(lambda: [x for x in self.deliveries(d)["deliveries"] if x["status"] == "delivered"] or None)
        self.assertEqual(item[0]["attempts"], 3)

        self.provider.route("POST", "/hooks", {"status": 500})
        status, doc = self.post(d, "open-app", b"[1]", {})
        failed = wait_for(lambda: [x for x in self.deliveries(d)["deliveries"]
                                   if x["id"] == doc["id"] and x["status"] == "failed"] or None)
        self.assertEqual(failed[0]["attempts"], 3)
        self.assertEqual(failed[0]["last_error"], "the forward URL answered 500")
        self.assertEqual(self.metric(d, "forward_failed"), 1)

    def test_deliveries_survive_a_restart_and_are_forwarded_after_it(self):
        settings = self.settings()
        settings.pop("webhook_forward_url")  # recorded, not forwarded
        d = self.daemon(NANGO, settings=settings)
        status, doc = self.post(d, "open-app", b'{"kept":true}', {})
        self.assertEqual(status, 200, doc)
        self.assertEqual(self.deliveries(d)["deliveries"][0]["status"], "stored")
        # paging
        self.post(d, "open-app", b"{}", {})
        page = self.deliveries(d, limit=1)
        self.assertEqual(len(page["deliveries"]), 1)
        rest = self.deliveries(d, limit=1, cursor=page["next_cursor"])
        self.assertEqual(rest["deliveries"][0]["id"], doc["id"])
        self.assertIsNone(rest["next_cursor"])
        # after a restart with a forward URL, the stored deliveries are listed as they were
        # and new ones are forwarded
        self.provider.route("POST", "/hooks", {"status": 200})
        d.stop()
        d.settings["webhook_forward_url"] = f"http://127.0.0.1:{self.provider.port}/hooks"
        d.write_config()
        d.start()
        self.assertEqual([x["status"] for x in self.deliveries(d)["deliveries"]], ["stored", "stored"])
        status, doc = self.post(d, "open-app", b'{"new":1}', {})
        self.assertEqual(status, 200, doc)
        got = wait_for(lambda: self.provider.received("POST", "/hooks"), what="the forward")
        self.assertEqual([g["body"] for g in got], [b'{"new":1}'])


if __name__ == "__main__":
    unittest.main()
