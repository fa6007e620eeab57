"""The host functions of ABI 1.1 (get_token, get_integration, get_env_all,
set_action_error, trigger_action_for, base_url_override and retry_on) in
both execution modes, a plugin built against the ABI 1.0 header still
working, and asynchronous actions: their failures as Nango reports them and
their results across a restart."""

import time
import unittest

from harness import DaemonTest, wait_for

NANGO = """
integrations:
    sdk:
        provider: local-test
        on-events:
            post-connection-creation:
                - sdk11
        actions:
            sdk11-action:
                description: fails on request, else tells its connection
            echo:
                description: returns its input
            slowecho:
                description: sleeps, then returns its input
    old:
        provider: local-test
        on-events:
            post-connection-creation:
                - oldabi
"""

PLUGINS = ["sdk11", "sdk11-action", "oldabi", "echo", "slowecho"]


class Sdk11Test(DaemonTest):
    def start(self, execution="isolated"):
        settings = {
            "execution": execution,
            "environment": {
                "EXPECTED_TOKEN": "k-main",
                "OVERRIDE_URL": f"http://127.0.0.1:{self.provider.port}/v2",
                "OTHER_CONNECTION": "other",
                "PLAIN": "value",
            },
        }
        return self.daemon(NANGO, settings=settings, test_plugins=PLUGINS)

    def connect(self, d, integration, cid):
        status, _, doc = d.create_connection(integration, cid, connection_config={"port": self.provider.port})
        self.assertEqual(status, 201, doc)
        runs = d.wait_executions(1, connection_id=cid, event="post-connection-creation")
        self.assertEqual(runs[0]["status"], "succeeded", d.execution(runs[0]["id"]))
        status, _, doc = d.request("GET", f"/connections/{cid}?provider_config_key={integration}")
        self.assertEqual(status, 200, doc)
        return doc["metadata"]

    def check_new_functions(self, execution):
        d = self.start(execution)
        self.provider.route("GET", "/v2/retry", {"status": 200})
        self.connect(d, "sdk", "other")
        self.provider.route("GET", "/v2/retry", {"status": 404}, {"status": 200})
        before = len(self.provider.received("GET", "/v2/retry"))
        meta = self.connect(d, "sdk", "main")
        self.assertEqual(meta["rc"], [0, 0, 0, 0, 0], meta)
        self.assertTrue(meta["token_ok"])
        self.assertEqual(meta["integration"], {"unique_key": "sdk", "provider": "local-test",
                                               "display_name": "Local test API (API key header)"})
        self.assertEqual(meta["env"], {"EXPECTED_TOKEN": "k-main", "OVERRIDE_URL": f"http://127.0.0.1:{self.provider.port}/v2",
                                       "OTHER_CONNECTION": "other", "PLAIN": "value"})
        # the action ran on the other connection, as a child of this execution
        self.assertEqual(meta["other"]["connection"]["connection_id"], "other")
        self.assertEqual(meta["set_action_error_in_event"], -9)  # EVS_EUNSUPPORTED
        # base_url_override took /retry to /v2/retry; retry_on retried the 404
        self.assertEqual(meta["retry_status"], 200)
        got = self.provider.received("GET", "/v2/retry")[before:]
        self.assertEqual(len(got), 2)
        self.assertEqual(got[0]["headers"]["x-api-key"], "k-main")
        children = [e for e in d.executions(connection_id="other") if e["event"] == "action"]
        self.assertEqual(len(children), 2)
        self.assertTrue(all(c["parent_execution_id"] for c in children))
        return d

    def test_new_host_functions_isolated(self):
        self.check_new_functions("isolated")

    def test_new_host_functions_in_process(self):
        self.check_new_functions("in-process")

    def test_a_plugin_built_against_the_1_0_header_keeps_working(self):
        self.provider.route("GET", "/old", {"status": 200, "body": {}})
        d = self.start()
        meta = self.connect(d, "old", "legacy")
        self.assertEqual(meta["request_size"], 80, "built with the 1.0 struct evs_request")
        self.assertTrue(meta["host_size_ok"])
        self.assertEqual(meta["host_minor"], 1)
        self.assertEqual(meta["proxy_status"], 200)
        self.assertTrue(meta["webhook"].endswith("/webhook/old"), meta)
        status, _, doc = d.request("GET", "/plugins")
        self.assertIn("oldabi", [p["name"] for p in doc["loaded"]])

    def test_action_error_payload_sync_and_async(self):
        d = self.start()
        status, _, doc = d.create_connection("sdk", "act", connection_config={"port": self.provider.port})
        self.assertEqual(status, 201, doc)
        headers = {"Connection-Id": "act", "Provider-Config-Key": "sdk"}
        body = {"action_name": "sdk11-action", "input": {"fail": True}}
        status, _, doc = d.request("POST", "/action/trigger", body, headers=headers)
        self.assertEqual(status, 500, doc)
        self.assertEqual(doc["error"]["code"], "action_script_failure")
        self.assertEqual(doc["error"]["message"], "the record is locked")
        self.assertEqual(doc["error"]["payload"], {"code": "E_LOCKED", "retry_after": 30})

        status, _, started = d.request("POST", "/action/trigger", body, headers=dict(headers, **{"X-Async": "true"}))
        self.assertEqual(status, 202, started)

        def result():
            s, _, r = d.request("GET", started["statusUrl"])
            return None if s == 404 else (s, r)
        status, doc = wait_for(result, what="the async result")
        self.assertEqual(status, 500, doc)
        self.assertEqual(doc["error"], {"code": "action_script_failure", "message": "the record is locked",
                                        "payload": {"code": "E_LOCKED", "retry_after": 30}})

    def test_async_results_survive_a_restart(self):
        d = self.start()
        status, _, doc = d.create_connection("sdk", "keep", connection_config={"port": self.provider.port})
        self.assertEqual(status, 201, doc)
        headers = {"Connection-Id": "keep", "Provider-Config-Key": "sdk", "X-Async": "true"}
        status, _, started = d.request("POST", "/action/trigger", {"action_name": "echo", "input": [1, "a"]},
                                       headers=headers)
        self.assertEqual(status, 202, started)
        self.assertEqual(started["statusUrl"], "/action/" + started["id"])

        def result():
            s, _, r = d.request("GET", started["statusUrl"])
            return None if s == 404 else (s, r)
        self.assertEqual(wait_for(result), (200, [1, "a"]))
        d.stop()
        d.start()
        self.assertEqual(d.request("GET", started["statusUrl"])[::2], (200, [1, "a"]))
        status, _, doc = d.request("GET", "/action/00000000-0000-4000-8000-000000000000")
        self.assertEqual((status, doc["error"]["code"]), (404, "not_found"))

    def async_running(self, d, cid):
        status, _, doc = d.create_connection("sdk", cid, connection_config={"port": self.provider.port})
        self.assertEqual(status, 201, doc)
        headers = {"Connection-Id": cid, "Provider-Config-Key": "sdk", "X-Async": "true"}
        status, _, started = d.request("POST", "/action/trigger", {"action_name": "slowecho", "input": {"slept": True}},
                                       headers=headers)
        self.assertEqual(status, 202, started)
        wait_for(lambda: [e for e in d.executions(connection_id=cid, event="action") if e["status"] == "running"]
                 or None, what="the action running")
        self.assertEqual(d.request("GET", started["statusUrl"])[0], 404, "404 while it runs")
        return started

    def test_stop_waits_for_a_running_async_action_then_serves_its_result(self):
        d = self.daemon(NANGO, settings={"environment": {"SLEEPER_MS": "1500"}, "drain_deadline_s": 30},
                        test_plugins=PLUGINS)
        started = self.async_running(d, "slow1")
        self.assertEqual(d.stop(), 0)
        d.start()
        self.assertEqual(d.request("GET", started["statusUrl"])[::2], (200, {"slept": True}))

    def test_an_async_action_cut_by_the_drain_deadline_reads_as_failed(self):
        d = self.daemon(NANGO, settings={"environment": {"SLEEPER_MS": "60000"}, "drain_deadline_s": 1},
                        test_plugins=PLUGINS)
        started = self.async_running(d, "slow2")
        d.stop()
        d.start()
        status, _, doc = d.request("GET", started["statusUrl"])
        self.assertEqual(status, 500, doc)
        self.assertEqual(doc["error"]["code"], "action_script_failure")
        self.assertEqual(doc["error"]["message"], "killed: generation drained")
        self.assertEqual(doc["error"]["payload"]["status"], "interrupted")


if __name__ == "__main__":
    unittest.main()
