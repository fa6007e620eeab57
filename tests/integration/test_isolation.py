"""Isolation end to end: the real daemon, real signed plugins, real HTTP.

Issue 4, "Isolation": each misbehaving plugin (crash, abort, exit, hang,
memory hog, log flood, forker) ends with the right status and its logs while
another integration's well-behaved execution runs at the same time and
succeeds; the daemon stays up and leaks no process and no descriptor; the
in-process mode runs scripts in the daemon with every host function; at most
max_concurrency executions run at once and the rest wait in the store.
"""

import json
import os
import re
import time
import unittest

from harness import DaemonTest, children, pids_named, wait_for

NANGO = """
integrations:
    good:
        provider: local-test
        on-events:
            post-connection-creation:
                - sleeper
    bad-crash:
        provider: local-test
        on-events:
            post-connection-creation: [crash]
    bad-abort:
        provider: local-test
        on-events:
            post-connection-creation: [abort]
    bad-exit:
        provider: local-test
        on-events:
            post-connection-creation: [exit]
    bad-hang:
        provider: local-test
        on-events:
            post-connection-creation: [hang]
    bad-memhog:
        provider: local-test
        on-events:
            post-connection-creation: [memhog]
    bad-logflood:
        provider: local-test
        on-events:
            post-connection-creation: [logflood]
    bad-forker:
        provider: local-test
        on-events:
            post-connection-creation: [forker]
    quick:
        provider: local-test
        on-events:
            post-connection-creation: [noop]
    where:
        provider: local-test
        on-events:
            post-connection-creation: [pidinfo]
    where-inproc:
        provider: local-test
        execution: in-process
        on-events:
            post-connection-creation: [pidinfo]
    all-inproc:
        provider: local-test
        execution: in-process
        on-events:
            post-connection-creation: [callall, metawriter]
        actions:
            echo:
                description: returns its input
"""

MISBEHAVING = ["crash", "abort", "exit", "hang", "memhog", "logflood", "forker"]
TEST_PLUGINS = MISBEHAVING + ["sleeper", "noop", "pidinfo", "callall", "metawriter", "echo"]
LOGFLOOD_LINES = 3000
LOG_LINES_MAX = 200


def open_fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


class IsolationTest(DaemonTest):
    def start(self, **settings):
        settings.setdefault("environment", {"SLEEPER_MS": "1200", "LOGFLOOD_LINES": str(LOGFLOOD_LINES),
                                            "GREETING": "hi"})
        settings.setdefault("max_concurrency", 4)
        settings.setdefault("memory_limit_mb", 64)
        settings.setdefault("log_lines_max", LOG_LINES_MAX)
        settings.setdefault("scripts", {"hang": {"deadline_s": 1}})
        # the executors a zygote keeps forked ahead (generation.c: prefork_for)
        self.pool = min(settings["max_concurrency"] + 2, 32)
        return self.daemon(NANGO, settings=settings, test_plugins=TEST_PLUGINS)

    def connect(self, d, integration, connection_id, **kw):
        kw.setdefault("connection_config", {"port": str(self.provider.port)})
        status, _, body = d.create_connection(integration, connection_id, **kw)
        self.assertEqual(status, 201, body)

    def only(self, d, **filters):
        [ex] = d.wait_executions(1, **filters)
        return ex

    def messages(self, d, execution_id):
        return [line["message"] for line in d.execution(execution_id)["logs"]]

    def metadata(self, d, integration, connection_id):
        status, _, body = d.request("GET", f"/connections/{connection_id}?provider_config_key={integration}")
        self.assertEqual(status, 200, body)
        return body["metadata"]

    def zygotes(self, d):
        return children(d.proc.pid)

    def assert_own_pid_namespace(self, meta):
        """An isolated execution is pid 1 of a PID namespace of its own: its
        parent, the zygote, is outside it (getppid() is 0)."""
        self.assertEqual((meta["pid"], meta["ppid"]), (1, 0), meta)

    def test_misbehaving_plugins_beside_a_good_one(self):
        d = self.start()
        expected = {
            "crash": ("crashed", r"^crashed: SIGSEGV \(Segmentation fault\)\nfault address 0x0 "
                      r"\(address not mapped to object\)\n#0 crash\.so\+0x[0-9a-f]+ on_event\+0x[0-9a-f]+\n"
                      r"(.*\n)*crash\.so build id [0-9a-f]{40}$", "about to crash on post-connection-creation"),
            "abort": ("crashed", r"^crashed: SIGABRT \(Aborted\)\nno fault address: the signal was sent "
                      r"\(abort, raise or kill\)\n(.*\n)*#\d+ abort\.so\+0x[0-9a-f]+ on_event\+0x[0-9a-f]+\n"
                      r"(.*\n)*abort\.so build id [0-9a-f]{40}$", "about to abort"),
            "exit": ("crashed", r"^exited with status 3 before returning$", "about to exit(3)"),
            "hang": ("timed_out", r"^timed out after 1 s$", "about to hang"),
            "memhog": (None, None, "allocating until it fails"),
            "logflood": ("succeeded", None, None),
            "forker": ("succeeded", None, None),
        }
        for name in MISBEHAVING:
            with self.subTest(plugin=name):
                # The well-behaved execution starts first and is still running...
                self.connect(d, "good", f"g-{name}")
                wait_for(lambda: d.executions(connection_id=f"g-{name}", status="running"),
                         what=f"the sleeper beside {name} to run")
                # ...while the misbehaving one runs and ends.
                t0 = time.monotonic()
                self.connect(d, f"bad-{name}", f"b-{name}")
                bad = self.only(d, connection_id=f"b-{name}")
                took = time.monotonic() - t0
                good = self.only(d, connection_id=f"g-{name}")
                self.assertEqual(good["status"], "succeeded", good)
                self.assertIsNone(good["error"])
                # the two ran at the same time
                self.assertLess(bad["started_at"], good["ended_at"])
                self.assertLess(good["started_at"], bad["ended_at"])
                status, error, first_line = expected[name]
                if name == "memhog":
                    # the address-space limit stops it: malloc fails (failed)
                    # or the process dies trying (crashed)
                    self.assertIn(bad["status"], ("failed", "crashed"), bad)
                    if bad["status"] == "failed":
                        self.assertRegex(bad["error"], r"^out of memory after \d+ MiB$")
                        mib = int(re.search(r"(\d+) MiB", bad["error"]).group(1))
                        self.assertLessEqual(mib, 64)
                else:
                    self.assertEqual(bad["status"], status, bad)
                if error:
                    self.assertRegex(bad["error"], error)
                if name == "hang":
                    self.assertLess(took, 5.0)
                if first_line:
                    # the lines logged before it went wrong are kept
                    self.assertIn(first_line, self.messages(d, bad["id"]))
                if name == "logflood":
                    full = d.execution(bad["id"])
                    self.assertEqual(full["logs_dropped"], LOGFLOOD_LINES - LOG_LINES_MAX, full["logs_dropped"])
                    self.assertEqual(len(full["logs"]), LOG_LINES_MAX + 1)
                    self.assertTrue(full["logs"][0]["message"].startswith("0 xxxx"))
                    self.assertTrue(full["logs"][LOG_LINES_MAX - 1]["message"].startswith(f"{LOG_LINES_MAX - 1} xxx"))
                    self.assertIn(str(LOGFLOOD_LINES - LOG_LINES_MAX), full["logs"][-1]["message"])
                if name == "forker":
                    self.assertTrue([m for m in self.messages(d, bad["id"]) if m.startswith("left child ")])
                    # the child it left behind (sleeping 60 s, named evs-forker-kid) is
                    # killed and reaped (killed but not reaped would leave a zombie, whose
                    # /proc/PID is still there, so pids_named() still lists it)
                    wait_for(lambda: not pids_named("evs-forker-kid"), timeout=5,
                             what=f"forker's child to be killed and reaped: {pids_named('evs-forker-kid')}")
                self.assertEqual(d.request("GET", "/healthz", auth=False)[:3:2], (200, {"status": "ok"}))

        # The daemon carries on: the next events run, misbehaving ones included.
        self.assertIsNone(d.proc.poll())
        self.connect(d, "quick", "after")
        self.assertEqual(self.only(d, connection_id="after")["status"], "succeeded")
        self.connect(d, "bad-crash", "b-crash-2")
        self.assertEqual(self.only(d, connection_id="b-crash-2")["status"], "crashed")
        status, _, metrics = d.request("GET", "/metrics")
        self.assertEqual(status, 200)
        # one series per integration, script, event and status: the crashes of all of them
        crashed = re.findall(r'^evscript_executions_total\{integration="[^"]*",script="[^"]*",'
                             r'event="post-connection-creation",status="crashed"\} (\d+)$', metrics, re.M)
        self.assertTrue(crashed, metrics)
        self.assertGreaterEqual(sum(int(c) for c in crashed), 4)

        # No leaks: no zombie, no leftover executor or grandchild.
        self.assert_no_leftover_processes(d)

    def assert_no_leftover_processes(self, d):
        def settled():
            zygotes = self.zygotes(d)
            if not zygotes or any(st.state == "Z" for st in zygotes.values()):
                return None
            execs = {}
            for z in zygotes:
                execs.update(children(z))
            # each zygote keeps at most its pre-forked idle executors
            if len(execs) > self.pool * len(zygotes) or any(st.state == "Z" for st in execs.values()):
                return None
            # an idle executor has no children of its own
            if any(children(e) for e in execs):
                return None
            return zygotes, execs
        zygotes, execs = wait_for(settled, timeout=10, what="the executors to settle: " +
                                  repr({z: children(z) for z in self.zygotes(d)}))
        self.assertEqual(len(zygotes), 1, zygotes)
        self.assertLessEqual(len(execs), self.pool, execs)

    def test_no_process_or_fd_leak_over_many_executions(self):
        d = self.start(max_concurrency=4)
        for i in range(5):
            self.connect(d, "quick", f"w{i}")
        d.wait_executions(5, provider_config_key="quick")
        self.assert_no_leftover_processes(d)
        before = open_fds(d.proc.pid)

        n = 50
        for i in range(n):
            self.connect(d, "quick", f"n{i}")
        ex = d.wait_executions(n + 5, timeout=60, provider_config_key="quick", limit=200)
        self.assertEqual(len(ex), n + 5)
        self.assertTrue(all(e["status"] == "succeeded" for e in ex), [e for e in ex if e["status"] != "succeeded"])
        self.assert_no_leftover_processes(d)
        # stable: what the executions opened was closed again
        after = wait_for(lambda: (lambda n_: n_ if n_ <= before else None)(open_fds(d.proc.pid)),
                         timeout=5, what=f"the daemon's fds to come back to {before} "
                                         f"(now {open_fds(d.proc.pid)})")
        self.assertLessEqual(after, before)
        self.assertGreaterEqual(after, before - 2)

    def test_in_process_mode(self):
        self.provider.route("GET", "/ping", {"status": 200, "body": {"pong": True}})
        d = self.start(webhook_base_url="https://hooks.example.test/wh")
        daemon_pid = d.proc.pid

        # per integration: where-inproc runs in the daemon, where in an executor
        self.connect(d, "where-inproc", "p1")
        self.assertEqual(self.only(d, connection_id="p1")["status"], "succeeded")
        self.assertEqual(self.metadata(d, "where-inproc", "p1")["pid"], daemon_pid)
        self.connect(d, "where", "p2")
        self.assertEqual(self.only(d, connection_id="p2")["status"], "succeeded")
        self.assert_own_pid_namespace(self.metadata(d, "where", "p2"))

        # every host function from a worker thread of the daemon
        self.connect(d, "all-inproc", "p3")
        ex = {e["script"]: e for e in d.wait_executions(3, connection_id="p3")}
        self.assertEqual(sorted(ex), ["callall", "echo", "metawriter"])
        self.assertTrue(all(e["status"] == "succeeded" for e in ex.values()), ex)
        self.assertEqual(ex["echo"]["parent_execution_id"], ex["callall"]["id"])
        meta = self.metadata(d, "all-inproc", "p3")
        # metawriter ran last: it replaced the metadata, then merged a key
        self.assertEqual(meta, {"written_by": "metawriter", "event_id": ex["metawriter"]["event_id"],
                                "merged": True})
        results = [m for m in self.messages(d, ex["callall"]["id"]) if m.startswith("results: ")]
        self.assertEqual(len(results), 1)
        r = json.loads(results[0][len("results: "):])
        self.assertEqual(r["rc_conn"], 0)
        self.assertTrue(r["conn_has_credentials"])
        self.assertTrue(r["conn_id_ok"])
        self.assertEqual((r["rc_set"], r["rc_upd"], r["rc_meta"]), (0, 0, 0))
        self.assertTrue(r["meta_has_a_b"])
        self.assertEqual((r["rc_env"], r["env"]), (0, "hi"))
        self.assertEqual(r["rc_env_other"], -3)  # PATH: not configured
        self.assertEqual((r["rc_url"], r["webhook"]), (0, "https://hooks.example.test/wh/all-inproc"))
        self.assertEqual((r["rc_act"], r["action_out"]), (0, {"x": 1}))
        self.assertEqual(r["rc_missing_action"], -3)
        self.assertEqual(r["rc_proxy"], 0)
        self.assertEqual(r["rc_bad_metadata"], -1)
        # callall's proxy() and paginate() each sent one request
        pings = self.provider.received("GET", "/ping")
        self.assertEqual(len(pings), 2)
        self.assertTrue(all(p["headers"]["x-api-key"] == "k-p3" for p in pings), pings)

    def test_global_in_process_mode(self):
        d = self.start(execution="in-process")
        self.connect(d, "where", "q1")
        self.assertEqual(self.only(d, connection_id="q1")["status"], "succeeded")
        self.assertEqual(self.metadata(d, "where", "q1")["pid"], d.proc.pid)

    def test_per_script_execution_mode_wins(self):
        # the script's setting over its integration's, over the global one
        d = self.start(scripts={"pidinfo": {"execution": "in-process"}})
        self.connect(d, "where", "s1")
        self.assertEqual(self.only(d, connection_id="s1")["status"], "succeeded")
        self.assertEqual(self.metadata(d, "where", "s1")["pid"], d.proc.pid)
        d2 = self.start(scripts={"pidinfo": {"execution": "isolated"}})
        self.connect(d2, "where-inproc", "s2")
        self.assertEqual(self.only(d2, connection_id="s2")["status"], "succeeded")
        self.assert_own_pid_namespace(self.metadata(d2, "where-inproc", "s2"))

    def test_cpu_time_limit(self):
        # a long deadline, a 1 s CPU limit: the kernel stops the loop
        d = self.start(scripts={}, cpu_limit_s=1)
        t0 = time.monotonic()
        self.connect(d, "bad-hang", "h1")
        ex = self.only(d, connection_id="h1")
        self.assertLess(time.monotonic() - t0, 10)
        self.assertEqual(ex["status"], "crashed", ex)
        self.assertRegex(ex["error"], r"^crashed: SIG(XCPU|KILL) ")
        self.assertIn("about to hang", self.messages(d, ex["id"]))
        self.assert_no_leftover_processes(d)

    def test_concurrency_limit(self):
        d = self.start(max_concurrency=2, environment={"SLEEPER_MS": "500"})
        n = 6
        for i in range(n):
            self.connect(d, "good", f"c{i}")
        most_running = 0
        most_pending = 0
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            ex = d.executions(provider_config_key="good")
            running = sum(e["status"] == "running" for e in ex)
            most_running = max(most_running, running)
            status, _, metrics = d.request("GET", "/metrics")
            self.assertEqual(status, 200)
            m = re.search(r"^evscript_events_pending (\d+)$", metrics, re.M)
            self.assertIsNotNone(m, metrics)
            most_pending = max(most_pending, int(m.group(1)))
            if len(ex) == n and running == 0:
                break
            time.sleep(0.05)
        ex = d.executions(provider_config_key="good")
        self.assertEqual(len(ex), n, ex)
        self.assertTrue(all(e["status"] == "succeeded" for e in ex), ex)
        self.assertEqual(most_running, 2)
        self.assertGreater(most_pending, 0)
        # never more than two at once, from the recorded times too
        for e in ex:
            overlapping = [o for o in ex if o["started_at"] < e["ended_at"] and e["started_at"] < o["ended_at"]]
            at_start = [o for o in ex if o["started_at"] <= e["started_at"] < o["ended_at"]]
            self.assertLessEqual(len(at_start), 2, (e, overlapping))


if __name__ == "__main__":
    unittest.main()
