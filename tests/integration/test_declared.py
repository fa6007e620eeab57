"""Scripts that declare their own events (EVS_ON_EVENT, EVS_ACTION_FOR in
sdk.h): they run with no nango.yaml entry, after nango.yaml's scripts, once
per event even when both name them; GET /plugins shows each subscription and
its sources; a declaration of an unknown event or integration refuses the
plugin; deploying a declared script is copying its signed .so and reloading.
"""

import os
import subprocess
import unittest

from harness import DaemonTest, env

NANGO = """
integrations:
    declared-int:
        provider: local-test
        on-events:
            post-connection-creation:
                - noop
    both-int:
        provider: local-test
        on-events:
            post-connection-creation:
                - declared
    plain-int:
        provider: local-test
"""

PLUGINS = ["noop", "declared", "declared-b", "declared-action"]


def by_name(items):
    return {p["name"]: p for p in items}


class DeclaredSubscriptionsTest(DaemonTest):
    def test_declared_scripts_run_after_nango_yaml_in_plugin_name_order(self):
        d = self.daemon(NANGO, test_plugins=PLUGINS)
        status, _, doc = d.create_connection("declared-int", "c1")
        self.assertEqual(status, 201, doc)
        runs = d.wait_executions(3, connection_id="c1")
        # newest first: reverse to get the run order
        self.assertEqual([e["script"] for e in reversed(runs)], ["noop", "declared", "declared-b"])
        self.assertTrue(all(e["status"] == "succeeded" for e in runs), runs)
        self.assertEqual(len({e["event_id"] for e in runs}), 1, "one event ran the three scripts")
        logs = [line["message"] for line in d.execution(
            next(e["id"] for e in runs if e["script"] == "declared"))["logs"]]
        self.assertIn("declared ran for post-connection-creation on declared-int", logs)

    def test_a_script_named_by_both_runs_once(self):
        d = self.daemon(NANGO, test_plugins=PLUGINS)
        status, _, doc = d.create_connection("both-int", "c2")
        self.assertEqual(status, 201, doc)
        runs = d.wait_executions(1, connection_id="c2")
        self.assertEqual([e["script"] for e in runs], ["declared"])
        # a plain integration nobody subscribes to runs nothing
        status, _, doc = d.create_connection("plain-int", "c3")
        self.assertEqual(status, 201, doc)
        status, _, doc = d.request("DELETE", "/connections/c2?provider_config_key=both-int")
        self.assertEqual(status, 200, doc)
        self.assertEqual(d.executions(connection_id="c3"), [])
        # declared for pre-connection-deletion of declared-int only: none for both-int
        self.assertEqual([e["event"] for e in d.executions(connection_id="c2")], ["post-connection-creation"])

    def test_plugins_lists_subscriptions_with_their_sources(self):
        d = self.daemon(NANGO, test_plugins=PLUGINS)
        status, _, doc = d.request("GET", "/plugins")
        self.assertEqual(status, 200, doc)
        loaded = by_name(doc["loaded"])
        subs = {(s["integration"], s["event"]): s["sources"] for s in loaded["declared"]["subscriptions"]}
        self.assertEqual(subs, {
            ("declared-int", "post-connection-creation"): ["plugin"],
            ("declared-int", "pre-connection-deletion"): ["plugin"],
            ("both-int", "post-connection-creation"): ["nango.yaml", "plugin"],
        })
        self.assertEqual(loaded["noop"]["subscriptions"],
                         [{"integration": "declared-int", "event": "post-connection-creation",
                           "sources": ["nango.yaml"]}])
        self.assertEqual(loaded["declared-action"]["subscriptions"],
                         [{"integration": "declared-int", "event": "action", "sources": ["plugin"]}])
        self.assertEqual(doc["refused"], [])

    def test_declared_action_is_offered_without_an_actions_entry(self):
        d = self.daemon(NANGO, test_plugins=PLUGINS)
        for integration in ("declared-int", "plain-int"):
            status, _, doc = d.create_connection(integration, "a-" + integration)
            self.assertEqual(status, 201, doc)
        headers = {"Connection-Id": "a-declared-int", "Provider-Config-Key": "declared-int"}
        status, _, doc = d.request("POST", "/action/trigger",
                                   {"action_name": "declared-action", "input": {"x": [1, 2]}}, headers=headers)
        self.assertEqual((status, doc), (200, {"x": [1, 2]}))
        headers = {"Connection-Id": "a-plain-int", "Provider-Config-Key": "plain-int"}
        status, _, doc = d.request("POST", "/action/trigger", {"action_name": "declared-action"}, headers=headers)
        self.assertEqual(status, 404, doc)
        self.assertEqual(doc["error"]["code"], "not_found")

    def test_unknown_event_or_integration_refuses_the_plugin(self):
        d = self.daemon(NANGO, test_plugins=["noop", "badsub-event", "badsub-int"])
        status, _, doc = d.request("GET", "/plugins")
        self.assertEqual(status, 200, doc)
        self.assertEqual(sorted(by_name(doc["loaded"])), ["noop"])
        refused = {r["name"]: r for r in doc["refused"]}
        self.assertEqual(sorted(refused), ["badsub-event", "badsub-int"])
        for r in refused.values():
            self.assertEqual(r["reason_code"], "bad_subscription", r)
            self.assertFalse(r["kept_previous"])
        self.assertIn("unknown event 'post-connection-update'", refused["badsub-event"]["reason"])
        self.assertIn("no-such-integration, which is not configured", refused["badsub-int"]["reason"])

    def test_the_declared_example_with_the_example_integrations(self):
        with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../examples/nango.yaml")) as f:
            example = f.read()
        d = self.daemon(example, plugins=["hello", "demo-welcome"],
                        settings={"environment": {"GREETING": "welcome"}})
        status, _, doc = d.create_connection("demo", "d1")
        self.assertEqual(status, 201, doc)
        runs = d.wait_executions(2, connection_id="d1")
        self.assertEqual([e["script"] for e in reversed(runs)], ["hello", "demo-welcome"])
        logs = [line["message"] for line in d.execution(runs[0]["id"])["logs"]]
        self.assertIn("welcome, connection d1 of demo", logs)

    def test_check_config_refuses_a_bad_subscription(self):
        d = self.daemon(NANGO, start=False, test_plugins=["declared", "badsub-int"])
        e = dict(os.environ)
        e.pop("EVSCRIPT_SECRET_KEY", None)
        r = subprocess.run([env("EVSCRIPTD"), "--config", d.config_path, "--check-config"],
                           capture_output=True, text=True, timeout=60, env=e)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("plugin declared 1.0.0: signature ok", r.stdout)
        self.assertIn("plugin badsub-int: refused (bad_subscription): bad event subscription: badsub-int.so "
                      "declares post-connection-creation for integration no-such-integration", r.stdout)

    def test_deploying_a_declared_script_is_copy_and_reload(self):
        d = self.daemon(NANGO, test_plugins=["noop"])
        status, _, doc = d.create_connection("declared-int", "before")
        self.assertEqual(status, 201, doc)
        self.assertEqual([e["script"] for e in d.wait_executions(1, connection_id="before")], ["noop"])
        d.deploy(os.path.join(env("EVS_TEST_PLUGINS_DIR"), "declared.so"))
        status, _, doc = d.request("POST", "/reload")
        self.assertEqual(status, 200, doc)
        status, _, doc = d.create_connection("declared-int", "after")
        self.assertEqual(status, 201, doc)
        runs = d.wait_executions(2, connection_id="after")
        self.assertEqual([e["script"] for e in reversed(runs)], ["noop", "declared"])


if __name__ == "__main__":
    unittest.main()
