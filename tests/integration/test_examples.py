"""The example scripts of plugins/, end to end: the real daemon, the signed
plugins the build makes, and a fake provider API that records what it gets.

Issue 4, "Example scripts in plugins/": github-webhooks creates and deletes a
repository webhook, slack-welcome posts with a retried request,
validate-api-key refuses rejected credentials, create-webhook is an action
and github-setup composes it with trigger_action. Every test runs once with
isolated executors (the default) and once in-process.
"""

import json
import os
import unittest

from harness import DaemonTest

# Providers pointing at the FakeProvider: its port comes from the connection's
# connection_config, so one catalogue serves every test.
PROVIDERS = """
github-test:
    display_name: GitHub (fake)
    auth_mode: OAUTH2
    proxy:
        base_url: http://127.0.0.1:${connectionConfig.port}
        headers:
            accept: application/vnd.github+json
        retry:
            after:
                - retry-after
slack-test:
    display_name: Slack (fake)
    auth_mode: OAUTH2
    proxy:
        base_url: http://127.0.0.1:${connectionConfig.port}/api
        retry:
            after:
                - retry-after
whoami-test:
    display_name: API key service (fake)
    auth_mode: API_KEY
    proxy:
        base_url: http://127.0.0.1:${connectionConfig.port}
        headers:
            x-api-key: ${apiKey}
"""

NANGO = """
integrations:
    gh:
        provider: github-test
        on-events:
            post-connection-creation:
                - github-webhooks
            pre-connection-deletion:
                - github-webhooks
    gh-setup:
        provider: github-test
        on-events:
            post-connection-creation:
                - github-setup
        actions:
            create-webhook:
                endpoint: POST /webhooks
    gh-actions:
        provider: github-test
        actions:
            create-webhook:
                endpoint: POST /webhooks
    chat:
        provider: slack-test
        on-events:
            post-connection-creation:
                - slack-welcome
    acme:
        provider: whoami-test
        on-events:
            validate-connection:
                - validate-api-key
"""

PLUGINS = ["github-webhooks", "slack-welcome", "validate-api-key", "create-webhook", "github-setup"]
WEBHOOK_BASE = "https://hooks.example.test/evscript"


class ExamplesTest(DaemonTest):
    EXECUTION = "isolated"

    def start(self, **settings):
        settings.setdefault("webhook_base_url", WEBHOOK_BASE)
        settings.setdefault("execution", self.EXECUTION)
        d = self.daemon(NANGO, start=False, settings=settings, plugins=PLUGINS)
        path = os.path.join(d.dir, "providers.yaml")
        with open(path, "w") as f:
            f.write(PROVIDERS)
        d.settings["providers"] = path
        d.write_config()
        d.start()
        return d

    def connect(self, d, integration, connection_id, credentials, **config):
        config["port"] = self.provider.port
        status, _, body = d.request("POST", "/connections", {
            "provider_config_key": integration, "connection_id": connection_id,
            "credentials": credentials, "connection_config": config})
        return status, body

    def oauth(self, token):
        return {"type": "OAUTH2", "access_token": token}

    def connection(self, d, integration, connection_id):
        status, _, body = d.request("GET", f"/connections/{connection_id}?provider_config_key={integration}")
        self.assertEqual(status, 200, body)
        return body

    def only(self, executions):
        self.assertEqual(len(executions), 1, executions)
        return executions[0]

    def messages(self, d, execution_id):
        return [line["message"] for line in d.execution(execution_id)["logs"]]

    # -- github-webhooks ---------------------------------------------------

    def test_github_webhooks_creates_the_hook_and_deletes_it(self):
        self.provider.route("POST", "/repos/octo/hello/hooks",
                            {"status": 201, "body": {"id": 4711, "name": "web", "active": True}})
        self.provider.route("DELETE", "/repos/octo/hello/hooks/4711", {"status": 204, "body": b""})
        d = self.start()
        status, body = self.connect(d, "gh", "c1", self.oauth("gho_first"), owner="octo", repo="hello")
        self.assertEqual(status, 201, body)

        ex = self.only(d.wait_executions(1, connection_id="c1", event="post-connection-creation"))
        self.assertEqual((ex["script"], ex["status"]), ("github-webhooks", "succeeded"), ex)
        [req] = self.provider.received("POST", "/repos/octo/hello/hooks")
        self.assertEqual(req["headers"]["authorization"], "Bearer gho_first")
        self.assertEqual(req["headers"]["accept"], "application/vnd.github+json")
        self.assertTrue(req["headers"]["content-type"].startswith("application/json"))
        self.assertEqual(json.loads(req["body"]), {
            "name": "web", "active": True, "events": ["push", "pull_request"],
            "config": {"url": WEBHOOK_BASE + "/gh", "content_type": "json"}})
        self.assertEqual(self.connection(d, "gh", "c1")["metadata"], {"github_webhook_id": 4711})
        self.assertIn(f"created webhook 4711 on octo/hello for {WEBHOOK_BASE}/gh", self.messages(d, ex["id"]))

        # A reconnect keeps the hook that still exists instead of making a second one.
        self.provider.route("GET", "/repos/octo/hello/hooks/4711", {"status": 200, "body": {"id": 4711}})
        status, body = self.connect(d, "gh", "c1", self.oauth("gho_second"), owner="octo", repo="hello")
        self.assertEqual(status, 201, body)
        ex = d.wait_executions(2, connection_id="c1", event="post-connection-creation")
        self.assertTrue(all(e["status"] == "succeeded" for e in ex), ex)
        [req] = self.provider.received("GET", "/repos/octo/hello/hooks/4711")
        self.assertEqual(req["headers"]["authorization"], "Bearer gho_second")
        self.assertEqual(len(self.provider.received("POST", "/repos/octo/hello/hooks")), 1)
        self.assertEqual(self.connection(d, "gh", "c1")["metadata"], {"github_webhook_id": 4711})

        status, _, body = d.request("DELETE", "/connections/c1?provider_config_key=gh")
        self.assertEqual((status, body), (200, {"success": True}))
        [req] = self.provider.received("DELETE", "/repos/octo/hello/hooks/4711")
        self.assertEqual(req["headers"]["authorization"], "Bearer gho_second")
        ex = self.only(d.executions(connection_id="c1", event="pre-connection-deletion"))
        self.assertEqual(ex["status"], "succeeded", ex)
        self.assertIn("deleted webhook 4711 on octo/hello", self.messages(d, ex["id"]))
        status, _, _ = d.request("GET", "/connections/c1?provider_config_key=gh")
        self.assertEqual(status, 404)

    def test_github_webhooks_deletion_succeeds_when_the_hook_is_gone(self):
        self.provider.route("POST", "/repos/octo/gone/hooks", {"status": 201, "body": {"id": 12}})
        self.provider.route("DELETE", "/repos/octo/gone/hooks/12", {"status": 404, "body": {"message": "Not Found"}})
        d = self.start()
        self.assertEqual(self.connect(d, "gh", "c2", self.oauth("t2"), owner="octo", repo="gone")[0], 201)
        d.wait_executions(1, connection_id="c2")
        self.assertEqual(self.connection(d, "gh", "c2")["metadata"], {"github_webhook_id": 12})

        status, _, _ = d.request("DELETE", "/connections/c2?provider_config_key=gh")
        self.assertEqual(status, 200)
        self.assertEqual(len(self.provider.received("DELETE", "/repos/octo/gone/hooks/12")), 1)
        ex = self.only(d.executions(connection_id="c2", event="pre-connection-deletion"))
        self.assertEqual(ex["status"], "succeeded", ex)
        self.assertIn("webhook 12 on octo/gone was already gone", self.messages(d, ex["id"]))

    def test_github_webhooks_reports_the_providers_message(self):
        self.provider.route("POST", "/repos/octo/locked/hooks",
                            {"status": 422, "body": {"message": "Validation Failed"}})
        self.provider.route("DELETE", "/repos/octo/secret/hooks/3", {"status": 403, "body": {"message": "Must have admin rights"}})
        d = self.start()
        self.assertEqual(self.connect(d, "gh", "c3", self.oauth("t3"), owner="octo", repo="locked")[0], 201)
        ex = self.only(d.wait_executions(1, connection_id="c3"))
        self.assertEqual(ex["status"], "failed", ex)
        self.assertEqual(ex["error"], "GitHub refused to create the webhook on octo/locked (HTTP 422): Validation Failed")
        self.assertEqual(self.connection(d, "gh", "c3")["metadata"], {})

        # No stored id: the deletion script has nothing to delete and succeeds.
        self.assertEqual(d.request("DELETE", "/connections/c3?provider_config_key=gh")[0], 200)
        ex = self.only(d.executions(connection_id="c3", event="pre-connection-deletion"))
        self.assertEqual(ex["status"], "succeeded", ex)
        self.assertEqual(self.provider.received("DELETE"), [])

        # A refused deletion fails the script with GitHub's words; the connection still goes.
        self.provider.route("POST", "/repos/octo/secret/hooks", {"status": 201, "body": {"id": 3}})
        self.assertEqual(self.connect(d, "gh", "c4", self.oauth("t4"), owner="octo", repo="secret")[0], 201)
        self.assertEqual(d.wait_executions(1, connection_id="c4")[0]["status"], "succeeded")
        self.assertEqual(d.request("DELETE", "/connections/c4?provider_config_key=gh")[0], 200)
        ex = self.only(d.executions(connection_id="c4", event="pre-connection-deletion"))
        self.assertEqual(ex["status"], "failed", ex)
        self.assertEqual(ex["error"],
                         "GitHub refused to delete webhook 3 on octo/secret (HTTP 403): Must have admin rights")
        self.assertEqual(d.request("GET", "/connections/c4?provider_config_key=gh")[0], 404)

    # -- slack-welcome -----------------------------------------------------

    def test_slack_welcome_retries_after_503_and_429(self):
        self.provider.route("POST", "/api/chat.postMessage",
                            {"status": 503, "body": {"ok": False, "error": "service_unavailable"}},
                            {"status": 429, "headers": {"Retry-After": "1"}, "body": {"ok": False, "error": "ratelimited"}},
                            {"status": 200, "body": {"ok": True, "channel": "C024BE91L", "ts": "1700000000.000100"}})
        d = self.start()
        status, body = self.connect(d, "chat", "s1", self.oauth("xoxb-slack"), channel="#ops")
        self.assertEqual(status, 201, body)
        ex = self.only(d.wait_executions(1, connection_id="s1"))
        self.assertEqual((ex["script"], ex["status"]), ("slack-welcome", "succeeded"), ex)

        reqs = self.provider.received("POST", "/api/chat.postMessage")
        self.assertEqual(len(reqs), 3)
        for req in reqs:
            self.assertEqual(req["headers"]["authorization"], "Bearer xoxb-slack")
            self.assertEqual(json.loads(req["body"]), {
                "channel": "#ops",
                "text": "Hello! evscript is now connected to this workspace (connection s1)."})
        # Retry-After: 1 was honoured before the third attempt.
        self.assertGreaterEqual(reqs[2]["time"] - reqs[1]["time"], 0.9)
        self.assertEqual(self.connection(d, "chat", "s1")["metadata"], {"slack_welcome_ts": "1700000000.000100"})
        self.assertIn("welcome message posted to #ops", self.messages(d, ex["id"]))

    def test_slack_welcome_fails_with_slacks_error(self):
        self.provider.route("POST", "/api/chat.postMessage",
                            {"status": 200, "body": {"ok": False, "error": "channel_not_found"}})
        d = self.start(environment={"SLACK_WELCOME_TEXT": "Welcome, \"team\"!"})
        self.assertEqual(self.connect(d, "chat", "s2", self.oauth("xoxb-2"))[0], 201)
        ex = self.only(d.wait_executions(1, connection_id="s2"))
        self.assertEqual(ex["status"], "failed", ex)
        self.assertEqual(ex["error"], "Slack refused the welcome message to #general: channel_not_found")
        # An ok:false answer is final: no retry.
        [req] = self.provider.received("POST", "/api/chat.postMessage")
        self.assertEqual(json.loads(req["body"]), {"channel": "#general", "text": "Welcome, \"team\"!"})

    # -- validate-api-key --------------------------------------------------

    def whoami(self, path, identity):
        def respond(record):
            if record["headers"].get("x-api-key") == "good-key":
                return {"status": 200, "body": identity}
            return {"status": 401, "body": {"message": "Bad credentials"}}
        self.provider.route("GET", path, respond)

    def test_validate_api_key_refuses_a_rejected_key(self):
        self.whoami("/whoami", {"id": 7, "login": "alice"})
        d = self.start()
        status, body = self.connect(d, "acme", "v1", {"type": "API_KEY", "apiKey": "bad-key"})
        self.assertEqual(status, 400, body)
        self.assertEqual(body["error"]["code"], "connection_validation_failed")
        self.assertEqual(body["error"]["message"], "the credentials were rejected by acme (HTTP 401)")
        self.assertEqual(body["error"]["payload"]["script"], "validate-api-key")
        [req] = self.provider.received("GET", "/whoami")
        self.assertEqual(req["headers"]["x-api-key"], "bad-key")
        self.assertEqual(d.request("GET", "/connections/v1?provider_config_key=acme")[0], 404)
        ex = d.execution(body["error"]["payload"]["execution_id"])
        self.assertEqual((ex["event"], ex["status"]), ("validate-connection", "failed"), ex)

        status, body = self.connect(d, "acme", "v1", {"type": "API_KEY", "apiKey": "good-key"})
        self.assertEqual(status, 201, body)
        conn = self.connection(d, "acme", "v1")
        self.assertEqual(conn["metadata"], {"validated_as": "alice"})
        self.assertEqual(conn["credentials"]["apiKey"], "good-key")

    def test_validate_api_key_path_from_environment_and_other_failures(self):
        self.whoami("/v1/me", {"name": "Acme \u00c9tudes"})
        d = self.start(environment={"VALIDATE_API_KEY_PATH": "/v1/me"})
        status, body = self.connect(d, "acme", "v2", {"type": "API_KEY", "apiKey": "good-key"})
        self.assertEqual(status, 201, body)
        self.assertEqual(self.connection(d, "acme", "v2")["metadata"], {"validated_as": "Acme \u00c9tudes"})
        self.assertEqual(self.provider.received("GET", "/whoami"), [])

        # Any other answer refuses the connection too, saying what came back.
        self.provider.route("GET", "/v1/me", {"status": 404, "body": {"message": "no such endpoint"}})
        status, body = self.connect(d, "acme", "v3", {"type": "API_KEY", "apiKey": "good-key"})
        self.assertEqual(status, 400, body)
        self.assertEqual(body["error"]["message"],
                         "could not check the credentials with acme: GET /v1/me answered HTTP 404: no such endpoint")
        self.assertEqual(d.request("GET", "/connections/v3?provider_config_key=acme")[0], 404)

    # -- create-webhook and github-setup -----------------------------------

    def test_github_setup_composes_create_webhook(self):
        self.provider.route("POST", "/repos/octo/setup/hooks", {"status": 201, "body": {"id": 99}})
        d = self.start()
        status, body = self.connect(d, "gh-setup", "g1", self.oauth("gho_setup"), owner="octo", repo="setup")
        self.assertEqual(status, 201, body)
        ex = {e["script"]: e for e in d.wait_executions(2, connection_id="g1")}
        self.assertEqual(sorted(ex), ["create-webhook", "github-setup"])
        script, action = ex["github-setup"], ex["create-webhook"]
        self.assertEqual(script["status"], "succeeded", script)
        self.assertEqual(action["status"], "succeeded", action)
        self.assertEqual(script["event"], "post-connection-creation")
        self.assertEqual(action["event"], "action")
        self.assertEqual(action["parent_execution_id"], script["id"])
        self.assertIsNone(script["parent_execution_id"])

        [req] = self.provider.received("POST", "/repos/octo/setup/hooks")
        self.assertEqual(req["headers"]["authorization"], "Bearer gho_setup")
        self.assertEqual(json.loads(req["body"]), {
            "name": "web", "active": True, "events": ["push", "pull_request"],
            "config": {"url": WEBHOOK_BASE + "/gh-setup", "content_type": "json"}})
        self.assertEqual(self.connection(d, "gh-setup", "g1")["metadata"], {"webhook_id": 99})
        self.assertIn("create-webhook created webhook 99; stored as webhook_id", self.messages(d, script["id"]))

    def test_create_webhook_triggered_over_http(self):
        self.provider.route("POST", "/repos/octo/direct/hooks", {"status": 201, "body": {"id": 7}})
        self.provider.route("POST", "/repos/other/elsewhere/hooks", {"status": 201, "body": {"id": 8}})
        self.provider.route("POST", "/repos/octo/missing/hooks", {"status": 404, "body": {"message": "Not Found"}})
        d = self.start()
        self.assertEqual(self.connect(d, "gh-actions", "a1", self.oauth("gho_a1"), owner="octo", repo="direct")[0], 201)
        headers = {"Connection-Id": "a1", "Provider-Config-Key": "gh-actions"}

        # No input: the connection's repository, the webhook URL, ["push"].
        status, _, body = d.request("POST", "/action/trigger", {"action_name": "create-webhook"}, headers=headers)
        self.assertEqual((status, body), (200, {"id": 7}))
        [req] = self.provider.received("POST", "/repos/octo/direct/hooks")
        self.assertEqual(req["headers"]["authorization"], "Bearer gho_a1")
        self.assertEqual(json.loads(req["body"]), {
            "name": "web", "active": True, "events": ["push"],
            "config": {"url": WEBHOOK_BASE + "/gh-actions", "content_type": "json"}})

        # Everything from the input.
        status, _, body = d.request("POST", "/action/trigger", {"action_name": "create-webhook", "input": {
            "owner": "other", "repo": "elsewhere", "url": "https://ci.example.test/hook",
            "events": ["issues", "release"]}}, headers=headers)
        self.assertEqual((status, body), (200, {"id": 8}))
        [req] = self.provider.received("POST", "/repos/other/elsewhere/hooks")
        self.assertEqual(json.loads(req["body"])["events"], ["issues", "release"])
        self.assertEqual(json.loads(req["body"])["config"]["url"], "https://ci.example.test/hook")

        ex = d.executions(connection_id="a1", script="create-webhook")
        self.assertEqual(len(ex), 2, ex)
        for e in ex:
            self.assertEqual((e["event"], e["status"]), ("action", "succeeded"), e)
            self.assertIsNone(e["event_id"])
            self.assertIsNone(e["parent_execution_id"])

        # A refusal is the action's failure, with GitHub's words.
        status, _, body = d.request("POST", "/action/trigger", {"action_name": "create-webhook",
                                                               "input": {"repo": "missing"}}, headers=headers)
        self.assertEqual(status, 500, body)
        self.assertEqual(body["error"]["code"], "action_script_failure")
        self.assertEqual(body["error"]["message"],
                         "GitHub refused to create the webhook on octo/missing (HTTP 404): Not Found")
        self.assertEqual(body["error"]["payload"]["status"], "failed")

        # Bad input is refused before any request.
        before = len(self.provider.requests)
        status, _, body = d.request("POST", "/action/trigger", {"action_name": "create-webhook",
                                                               "input": {"events": "push"}}, headers=headers)
        self.assertEqual(status, 500, body)
        self.assertEqual(body["error"]["message"], "\"events\" must be an array of 1 to 32 event names")
        self.assertEqual(len(self.provider.requests), before)


class InProcessExamplesTest(ExamplesTest):
    """The same scripts called directly on a worker thread."""
    EXECUTION = "in-process"


if __name__ == "__main__":
    unittest.main()
