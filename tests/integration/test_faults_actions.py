"""Action trees (issue 15): one root and every action it triggers, nested or
not, share the root's deadline (a nested action gets what is left of its
caller's) and a cap on the executions they start (action_tree_max_executions);
no descendant runs on after its root ends."""

from harness import DaemonTest

NANGO = """
integrations:
    tree:
        provider: local-test
        actions:
            fanout:
                description: triggers itself
"""


class ActionTrees(DaemonTest):
    def trigger(self, d, cid, inp):
        if d.request("GET", f"/connections/{cid}?provider_config_key=tree")[0] == 404:
            self.assertEqual(d.create_connection("tree", cid)[0], 201)
        return d.request("POST", "/action/trigger", {"action_name": "fanout", "input": inp},
                         headers={"Connection-Id": cid, "Provider-Config-Key": "tree"}, timeout=120)

    def test_cap_per_root(self):
        """A fan-out of 3 over 8 levels would be 9,841 executions: the tree
        stops at the cap, and each root has a cap of its own."""
        d = self.daemon(NANGO, test_plugins=["fanout"], settings={"action_tree_max_executions": 20})
        status, _, doc = self.trigger(d, "c1", {"max": 8, "fan": 3})
        self.assertEqual(status, 200, doc)
        ex = d.wait_executions(20, connection_id="c1")
        self.assertEqual(len(ex), 20)
        self.assertTrue(all(e["status"] == "succeeded" for e in ex), ex)
        root = min(ex, key=lambda e: e["id"])
        self.assertIsNone(root["parent_execution_id"])
        logs = [l["message"] for e in ex for l in d.execution(e["id"])["logs"]]
        self.assertTrue(any("action_tree_max_executions" in m for m in logs), logs)
        # a second root: its own 20
        status, _, _ = self.trigger(d, "c2", {"max": 8, "fan": 3})
        self.assertEqual(status, 200)
        self.assertEqual(len(d.wait_executions(20, connection_id="c2")), 20)

    def test_one_deadline_for_the_tree(self):
        """A chain of 7 actions sleeping 1.3 s each under a 3 s deadline: the
        nested ones get what is left of the root's 3 s, so the chain stops
        at the root's deadline instead of running 9 s, and nothing is left
        running. (1.3 s: the third one is asleep, far from any edge, when
        the deadline comes.)"""
        d = self.daemon(NANGO, test_plugins=["fanout"], settings={"scripts": {"fanout": {"deadline_s": 3}}})
        status, _, doc = self.trigger(d, "c1", {"max": 6, "fan": 1, "sleep_ms": 1300})
        self.assertNotEqual(status, 200, doc)
        ex = sorted(d.wait_executions(1, connection_id="c1", timeout=60), key=lambda e: e["id"])
        self.assertLess(len(ex), 7, ex)
        self.assertEqual(ex[0]["status"], "timed_out", ex)
        self.assertNotIn("succeeded", [e["status"] for e in ex], ex)
        self.assertNotIn("running", [e["status"] for e in ex], ex)
