"""Event semantics end to end: the real daemon, real signed plugins, real HTTP.

Issue 3: each event type, ordering, validate-connection failure stores
nothing, deletion waits for its scripts, exactly once across a kill -9,
Idempotency-Key, reconnects as new occurrences.
"""

import signal
import time
import unittest

from harness import DaemonTest, wait_for

NANGO = """
integrations:
    demo:
        provider: local-test
        on-events:
            post-connection-creation:
                - hello
                - sleeper
            pre-connection-deletion:
                - sleeper
                - failmsg
    checked:
        provider: local-test
        on-events:
            validate-connection:
                - hello
                - check-key
    slow:
        provider: local-test
        on-events:
            post-connection-creation:
                - sleeper
    quiet:
        provider: local-test
"""

PLUGINS = ["hello"]
TEST_PLUGINS = ["sleeper", "failmsg", "check-key"]


class EventTest(DaemonTest):
    def start(self, sleep_ms=300, **settings):
        settings.setdefault("environment", {"SLEEPER_MS": str(sleep_ms), "FAIL_MESSAGE": "nope: no access"})
        return self.daemon(NANGO, settings=settings, plugins=PLUGINS, test_plugins=TEST_PLUGINS)

    def test_post_connection_creation_runs_scripts_in_order(self):
        d = self.start()
        t0 = time.monotonic()
        status, _, body = d.create_connection("demo", "c1")
        self.assertEqual(status, 201, body)
        # the response does not wait for the scripts (sleeper sleeps 300 ms)
        self.assertLess(time.monotonic() - t0, 0.3)
        self.assertEqual(body["connection_id"], "c1")
        ex = d.wait_executions(2, connection_id="c1")
        ex.sort(key=lambda e: e["id"])
        self.assertEqual([e["script"] for e in ex], ["hello", "sleeper"])
        self.assertTrue(all(e["status"] == "succeeded" for e in ex), ex)
        self.assertEqual(ex[0]["event_id"], ex[1]["event_id"])
        self.assertTrue(all(e["event"] == "post-connection-creation" for e in ex))
        # one after another: the second starts after the first ended
        self.assertLessEqual(ex[0]["ended_at"], ex[1]["started_at"])
        full = d.execution(ex[0]["id"])
        messages = [line["message"] for line in full["logs"]]
        self.assertIn("post-connection-creation for connection c1", messages)

    def test_reconnect_is_a_new_occurrence(self):
        d = self.start(sleep_ms=1)
        self.assertEqual(d.create_connection("demo", "c2")[0], 201)
        d.wait_executions(2, connection_id="c2")
        self.assertEqual(d.create_connection("demo", "c2", credentials={"type": "API_KEY", "apiKey": "new"})[0], 201)
        ex = d.wait_executions(4, connection_id="c2")
        self.assertEqual(len({e["event_id"] for e in ex}), 2)
        status, _, conn = d.request("GET", "/connections/c2?provider_config_key=demo")
        self.assertEqual(conn["credentials"]["apiKey"], "new")

    def test_validate_failure_stores_nothing(self):
        d = self.start()
        status, _, body = d.create_connection("checked", "v1", credentials={"type": "API_KEY", "apiKey": "bad-1"})
        self.assertEqual(status, 400, body)
        self.assertEqual(body["error"]["code"], "connection_validation_failed")
        self.assertIn("nope: no access", body["error"]["message"])
        status, _, _ = d.request("GET", "/connections/v1?provider_config_key=checked")
        self.assertEqual(status, 404)
        ex = d.executions(connection_id="v1")
        self.assertEqual(sorted(e["script"] for e in ex), ["check-key", "hello"])
        self.assertTrue(all(e["event"] == "validate-connection" for e in ex))
        self.assertEqual({e["script"]: e["status"] for e in ex}, {"hello": "succeeded", "check-key": "failed"})
        # no post-connection-creation event was recorded
        self.assertEqual(d.executions(event="post-connection-creation", connection_id="v1"), [])

    def test_validate_failure_keeps_previous_credentials(self):
        d = self.start()
        ok = {"type": "API_KEY", "apiKey": "good-1"}
        self.assertEqual(d.create_connection("checked", "v2", credentials=ok)[0], 201)
        # a re-import whose credentials fail validation leaves the old ones
        status, _, body = d.create_connection("checked", "v2", credentials={"type": "API_KEY", "apiKey": "bad-2"})
        self.assertEqual(status, 400, body)
        status, _, conn = d.request("GET", "/connections/v2?provider_config_key=checked")
        self.assertEqual(status, 200)
        self.assertEqual(conn["credentials"]["apiKey"], "good-1")

    def test_deletion_waits_for_its_scripts_and_happens_when_one_fails(self):
        d = self.start(sleep_ms=400)
        self.assertEqual(d.create_connection("demo", "c3")[0], 201)
        d.wait_executions(2, connection_id="c3")
        t0 = time.monotonic()
        status, _, body = d.request("DELETE", "/connections/c3?provider_config_key=demo")
        elapsed = time.monotonic() - t0
        self.assertEqual(status, 200, body)
        self.assertGreaterEqual(elapsed, 0.4)
        ex = d.executions(connection_id="c3", event="pre-connection-deletion")
        self.assertEqual({e["script"]: e["status"] for e in ex}, {"sleeper": "succeeded", "failmsg": "failed"})
        self.assertTrue(all(e["ended_at"] for e in ex))
        self.assertEqual(d.request("GET", "/connections/c3?provider_config_key=demo")[0], 404)

    def test_idempotency_key_replays_the_first_response(self):
        d = self.start(sleep_ms=1)
        body = {"provider_config_key": "demo", "connection_id": "c4",
                "credentials": {"type": "API_KEY", "apiKey": "k"}}
        s1, h1, b1 = d.request("POST", "/connections", body, headers={"Idempotency-Key": "key-1"})
        s2, h2, b2 = d.request("POST", "/connections", body, headers={"Idempotency-Key": "key-1"})
        self.assertEqual((s1, s2), (201, 201))
        self.assertEqual(b1, b2)
        self.assertEqual(h2.get("Idempotent-Replayed"), "true")
        ex = d.wait_executions(2, connection_id="c4")
        time.sleep(0.3)
        self.assertEqual(len(d.executions(connection_id="c4")), 2)
        self.assertEqual(len({e["event_id"] for e in ex}), 1)
        other = dict(body, connection_id="c5")
        s3, _, b3 = d.request("POST", "/connections", other, headers={"Idempotency-Key": "key-1"})
        self.assertEqual(s3, 422, b3)
        self.assertEqual(b3["error"]["code"], "idempotency_key_reused")

    def test_burst_runs_every_event_exactly_once(self):
        d = self.start(sleep_ms=1, max_concurrency=4)
        n = 40
        for i in range(n):
            self.assertEqual(d.create_connection("demo", f"b{i}")[0], 201)
        ex = d.wait_executions(2 * n, timeout=60, event="post-connection-creation", provider_config_key="demo", limit=200)
        self.assertEqual(len(ex), 2 * n)
        per_event = {}
        for e in ex:
            per_event.setdefault(e["event_id"], []).append(e["script"])
        self.assertEqual(len(per_event), n)
        self.assertTrue(all(sorted(s) == ["hello", "sleeper"] for s in per_event.values()))

    def test_kill_9_interrupts_running_and_dispatches_pending_once(self):
        d = self.start(sleep_ms=30000, max_concurrency=1)
        self.assertEqual(d.create_connection("slow", "k1")[0], 201)
        running = wait_for(lambda: [e for e in d.executions(connection_id="k1") if e["status"] == "running"],
                           what="the slow script to run")
        # the only worker is busy: this event stays pending in the store
        self.assertEqual(d.create_connection("demo", "k2")[0], 201)
        time.sleep(0.2)
        self.assertEqual(d.executions(connection_id="k2"), [])
        d.kill9()

        d.settings["environment"]["SLEEPER_MS"] = "1"
        d.write_config()
        d.start()
        ex = d.wait_executions(2, connection_id="k2")
        self.assertEqual(sorted(e["script"] for e in ex), ["hello", "sleeper"])
        self.assertTrue(all(e["status"] == "succeeded" for e in ex))
        slow = d.executions(connection_id="k1")
        self.assertEqual(len(slow), 1, slow)  # never re-run on its own
        self.assertEqual(slow[0]["id"], running[0]["id"])
        self.assertEqual(slow[0]["status"], "interrupted")
        time.sleep(0.5)
        self.assertEqual(len(d.executions(connection_id="k2")), 2)

        # ... and can be retried on request
        status, _, body = d.request("POST", f"/executions/{slow[0]['id']}/retry")
        self.assertIn(status, (200, 201, 202), body)
        ex = d.wait_executions(2, connection_id="k1")
        retried = [e for e in ex if e["id"] != slow[0]["id"]]
        self.assertEqual(retried[0]["status"], "succeeded")
        self.assertEqual(retried[0]["script"], "sleeper")

    def test_sigterm_with_running_execution_exits_cleanly(self):
        d = self.start(sleep_ms=30000, drain_deadline_s=1)
        self.assertEqual(d.create_connection("slow", "t1")[0], 201)
        wait_for(lambda: [e for e in d.executions(connection_id="t1") if e["status"] == "running"],
                 what="the slow script to run")
        t0 = time.monotonic()
        self.assertEqual(d.stop(signal.SIGTERM), 0)
        self.assertLess(time.monotonic() - t0, 15)
        d.start()
        ex = d.executions(connection_id="t1")
        self.assertEqual([e["status"] for e in ex], ["interrupted"])


if __name__ == "__main__":
    unittest.main()
