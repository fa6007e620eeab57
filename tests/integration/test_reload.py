"""Reload, drain and shutdown end to end (issue 5): the real daemon, plugins
compiled and signed at test time in several versions, real signals.

The plugin `ver` logs "<name> <version> ran event <id>"; a connection id
"sleepN-..." makes it sleep N milliseconds first. `other` is the same source
under another name, to show the other plugins of a reload taking effect while
one is refused.
"""

import json
import os
import re
import shutil
import signal
import tempfile
import threading
import time
import unittest
import urllib.parse

from harness import DaemonTest, cc_plugin, children, proc_stat, sign_plugin, wait_for, write_file

PLUGIN_C = r"""
#include <evscript/sdk.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifdef WRONG_ABI
EVS_EXPORT const struct evs_plugin_info evs_plugin_info = {
	sizeof(struct evs_plugin_info), EVS_ABI_MAJOR + 1, 0, NAME, VERSION};
#else
EVS_PLUGIN(NAME, VERSION);
#endif

int on_event(const struct evs_host *host, struct evs_ctx *ctx, const struct evs_event *event)
{
	if (strncmp(event->connection_id, "sleep", 5) == 0) {
		long ms = strtol(event->connection_id + 5, NULL, 10);
		struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

		while (nanosleep(&ts, &ts) != 0)
			;
	}
	host->log(ctx, EVS_LOG_INFO, "%s %s ran event %lld", NAME, VERSION, (long long)event->event_id);
	return 0;
}
"""

NANGO = """
integrations:
    demo:
        provider: local-test
        on-events:
            post-connection-creation:
                - ver
    second:
        provider: local-test
        on-events:
            post-connection-creation:
                - other
"""

LOG_RE = re.compile(r"^(ver|other) (\d+\.\d+\.\d+) ran event (\d+)$")


def build_plugin(outdir, name, version, tag=None, wrong_abi=False, comment_version=None):
    """Compiles and signs NAME.so at VERSION into outdir/TAG/ (the tag keeps variants apart)."""
    d = os.path.join(outdir, tag or f"{name}-{version}")
    os.makedirs(d, exist_ok=True)
    src = os.path.join(outdir, "plugin.c")
    if not os.path.exists(src):
        write_file(src, PLUGIN_C)
    so = cc_plugin(src, os.path.join(d, name + ".so"), *(["-DWRONG_ABI"] if wrong_abi else []), "-O1",
                   f'-DNAME="{name}"', f'-DVERSION="{version}"')
    return sign_plugin(so, f"plugin:{name} version:{comment_version or version} abi:1")


def descendants(pid):
    """{pid: starttime} of every live (not zombie) descendant."""
    found, pending = {}, [pid]
    while pending:
        for c, st in children(pending.pop()).items():
            if st.state != "Z":
                found[c] = st.starttime
                pending.append(c)
    return found


def alive(pid, starttime):
    """Whether the process (pid, starttime) still runs (a zombie does not)."""
    st = proc_stat(pid)
    return st is not None and st.state != "Z" and st.starttime == starttime


def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


class ReloadTest(DaemonTest):
    @classmethod
    def setUpClass(cls):
        cls.build = tempfile.mkdtemp(prefix="evs-reload-build-")
        b = cls.build
        cls.v1 = build_plugin(b, "ver", "1.0.0")
        cls.v2 = build_plugin(b, "ver", "2.0.0")
        cls.other1 = build_plugin(b, "other", "1.0.0")
        cls.other2 = build_plugin(b, "other", "2.0.0")
        cls.downgrade = build_plugin(b, "ver", "0.9.0")
        cls.wrong_abi = build_plugin(b, "ver", "3.0.0", tag="abi", wrong_abi=True)
        # a tampered v3: signed, then one byte of the code changed
        cls.tampered = build_plugin(b, "ver", "3.0.0", tag="tampered")
        with open(cls.tampered, "r+b") as f:
            data = bytearray(f.read())
            data[len(data) // 2] ^= 0xFF
            f.seek(0)
            f.write(data)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.build, ignore_errors=True)

    # ---- helpers

    def start(self, extra_env=None, **settings):
        d = self.daemon(NANGO, start=False, settings=settings)
        d.deploy(self.v1)
        d.deploy(self.other1)
        d.start(extra_env=extra_env)
        return d

    def all_executions(self, d, **filters):
        out, cursor = [], None
        while True:
            q = dict(filters, limit=200)
            if cursor:
                q["cursor"] = cursor
            st, _, doc = d.request("GET", "/executions?" + urllib.parse.urlencode(q))
            self.assertEqual(st, 200, doc)
            out += doc["executions"]
            cursor = doc["next_cursor"]
            if not cursor:
                return out

    def wait_done(self, d, count, timeout=60, **filters):
        def done():
            ex = self.all_executions(d, **filters)
            if len(ex) >= count and not any(e["status"] == "running" for e in ex):
                return ex
            return None
        return wait_for(done, timeout, interval=0.1, what=f"{count} finished executions")

    def reload_error(self, d):
        st, _, body = d.request("POST", "/reload")
        self.assertEqual(st, 422, body)
        self.assertEqual(body["error"]["code"], "reload_failed", body)
        return body["error"]

    def plugins(self, d):
        st, _, p = d.request("GET", "/plugins")
        self.assertEqual(st, 200, p)
        return p

    def loaded(self, d):
        return {x["name"]: x for x in self.plugins(d)["loaded"]}

    def logged_version(self, d, execution):
        """The version the plugin itself logged for this execution (and checks the event id)."""
        lines = [LOG_RE.match(x["message"]) for x in d.execution(execution["id"])["logs"]]
        lines = [m for m in lines if m]
        self.assertEqual(len(lines), 1, execution)
        self.assertEqual(int(lines[0].group(3)), execution["event_id"])
        return lines[0].group(2)

    def run_one(self, d, integration, connection_id):
        """Creates a connection and returns its finished execution."""
        st, _, body = d.create_connection(integration, connection_id)
        self.assertEqual(st, 201, body)
        return self.wait_done(d, 1, connection_id=connection_id)[0]

    def zygotes(self, d):
        """Pids of the daemon's live zygotes, in order."""
        return sorted(p for p, st in children(d.proc.pid).items() if st.state != "Z")

    def wait_zygotes(self, d, n, timeout=10):
        return wait_for(lambda: len(self.zygotes(d)) == n, timeout, interval=0.05,
                        what=f"{n} zygote(s), have {self.zygotes(d)}")

    def wait_generation(self, d, n, timeout=30):
        wait_for(lambda: self.plugins(d)["generation"] >= n, timeout, interval=0.05,
                 what=f"generation {n}")

    class Stream:
        """Creates connections continuously on a thread; remembers when each was asked for."""

        def __init__(self, test, d, prefix, integration="demo"):
            self.test, self.d, self.prefix, self.integration = test, d, prefix, integration
            self.created = []  # (connection_id, monotonic time the request was sent)
            self.errors = []
            self.stop_flag = threading.Event()
            self.thread = threading.Thread(target=self.run, daemon=True)
            self.thread.start()

        def run(self):
            i = 0
            while not self.stop_flag.is_set():
                cid = f"{self.prefix}{i}"
                t = time.monotonic()
                st, _, body = self.d.create_connection(self.integration, cid)
                if st == 201:
                    self.created.append((cid, t))
                else:
                    self.errors.append((cid, st, body))
                i += 1
                time.sleep(0.005)

        def stop(self):
            self.stop_flag.set()
            self.thread.join(30)

    # ---- tests

    def test_deploy_v2_during_a_stream_of_events(self):
        d = self.start()
        self.assertEqual(self.loaded(d)["ver"]["version"], "1.0.0")
        stream = self.Stream(self, d, "s")
        wait_for(lambda: len(stream.created) >= 15, 20, what="events before the deploy")
        d.deploy(self.v2)
        d.send_signal(signal.SIGHUP)
        self.wait_generation(d, 2)
        switched = time.monotonic()
        p = self.loaded(d)
        self.assertEqual(p["ver"]["version"], "2.0.0")
        self.assertEqual(p["ver"]["generation"], 2)
        self.assertEqual(p["other"]["generation"], 1)  # same bytes: loaded in generation 1
        n = len(stream.created)
        wait_for(lambda: len(stream.created) >= n + 15, 20, what="events after the reload")
        stream.stop()
        self.assertEqual(stream.errors, [])

        ex = self.wait_done(d, len(stream.created), script="ver")
        by_conn = {}
        for e in ex:
            by_conn.setdefault(e["connection_id"], []).append(e)
        by_event = {}
        for e in ex:
            by_event.setdefault(e["event_id"], []).append(e)
        # every event ran exactly once; none lost
        self.assertEqual(sorted(by_conn), sorted(c for c, _ in stream.created))
        self.assertTrue(all(len(v) == 1 for v in by_conn.values()), by_conn)
        self.assertTrue(all(len(v) == 1 for v in by_event.values()), by_event)
        self.assertEqual(len(by_event), len(stream.created))
        versions = {}
        for cid, asked in stream.created:
            e = by_conn[cid][0]
            self.assertEqual(e["status"], "succeeded", e)
            logged = self.logged_version(d, e)
            self.assertEqual(logged, e["script_version"])
            self.assertIn(logged, ("1.0.0", "2.0.0"))
            versions[cid] = logged
            if asked > switched:
                self.assertEqual(logged, "2.0.0", f"{cid} asked for after the switch")
        self.assertIn("1.0.0", versions.values())
        self.assertIn("2.0.0", versions.values())
        # the old generation's zygote is gone: one zygote, the new one
        self.wait_zygotes(d, 1)

    def test_long_v1_execution_survives_a_reload(self):
        d = self.start()
        self.wait_zygotes(d, 1)
        zyg1 = self.zygotes(d)
        st, _, _ = d.create_connection("demo", "sleep3000-long")
        self.assertEqual(st, 201)
        wait_for(lambda: [e for e in d.executions(connection_id="sleep3000-long") if e["status"] == "running"],
                 10, what="the long execution to start")
        d.deploy(self.v2)
        t0 = time.monotonic()
        st, _, r = d.request("POST", "/reload")
        self.assertEqual(st, 200, r)
        self.assertEqual(r["generation"], 2)
        self.assertLess(time.monotonic() - t0, 2.5, "the reload waited for the running execution")
        # the API answers and new events run on v2 while v1 still runs
        e = self.run_one(d, "demo", "after")
        self.assertEqual((e["status"], self.logged_version(d, e)), ("succeeded", "2.0.0"))
        long_ex = d.executions(connection_id="sleep3000-long")[0]
        self.assertEqual(long_ex["status"], "running")
        self.assertEqual(len(self.zygotes(d)), 2)  # the old one drains
        self.assertIn(zyg1[0], self.zygotes(d))
        long_ex = self.wait_done(d, 1, connection_id="sleep3000-long")[0]
        self.assertEqual(long_ex["status"], "succeeded", long_ex)
        self.assertEqual(long_ex["script_version"], "1.0.0")
        self.assertEqual(self.logged_version(d, long_ex), "1.0.0")
        # the old zygote exits once its last executor is reaped
        self.wait_zygotes(d, 1, timeout=3)
        self.assertNotIn(zyg1[0], self.zygotes(d))
        self.assertIn("generation 1 retired", d.logs())

    def test_drain_deadline_kills_stragglers(self):
        d = self.start(drain_deadline_s=1)
        st, _, _ = d.create_connection("demo", "sleep6000-straggler")
        self.assertEqual(st, 201)
        wait_for(lambda: [e for e in d.executions(connection_id="sleep6000-straggler") if e["status"] == "running"],
                 10, what="the long execution to start")
        d.deploy(self.v2)
        t0 = time.monotonic()
        st, _, r = d.request("POST", "/reload")
        self.assertEqual(st, 200, r)
        # new events run on v2 meanwhile: the old generation's straggler blocks nothing
        e = self.run_one(d, "demo", "meanwhile")
        self.assertEqual(self.logged_version(d, e), "2.0.0")
        ex = self.wait_done(d, 1, timeout=10, connection_id="sleep6000-straggler")[0]
        self.assertLess(time.monotonic() - t0, 4.5, "killed at the drain deadline, not at its end")
        self.assertEqual(ex["status"], "timed_out", ex)
        self.assertEqual(ex["error"], "killed: generation drained")
        self.assertEqual(ex["script_version"], "1.0.0")
        self.wait_zygotes(d, 1, timeout=3)

    def test_bad_reloads_keep_the_running_generation(self):
        d = self.start()
        e = self.run_one(d, "demo", "before")
        self.assertEqual(self.logged_version(d, e), "1.0.0")

        # a broken YAML: nothing changes, the error says where
        with open(d.config_path) as f:
            good = f.read()
        with open(d.config_path, "a") as f:
            f.write("\nmax_concurrency: [1,\n")
        err = self.reload_error(d)
        msg = err["message"]
        self.assertRegex(msg, r"evscript\.yaml:\d+:\d+: ")
        p = self.plugins(d)
        self.assertEqual(p["generation"], 1)
        self.assertEqual(p["last_reload_error"], msg)
        d.send_signal(signal.SIGHUP)  # the same through SIGHUP: logged
        wait_for(lambda: re.search(r"reload failed, generation 1 stays in service: .*evscript\.yaml:\d+:\d+: ",
                                   d.logs()), 10, what="the SIGHUP reload error in the log")
        e = self.run_one(d, "demo", "broken-yaml")
        self.assertEqual(self.logged_version(d, e), "1.0.0")
        with open(d.config_path, "w") as f:
            f.write(good)

        # refused plugins: ver keeps 1.0.0, other's 2.0.0 takes effect in the same reload
        gen = 1
        other_version = "1.0.0"
        for variant, code in ((self.tampered, "bad_signature"), (self.downgrade, "downgrade"),
                              (self.wrong_abi, "abi_mismatch")):
            with self.subTest(code=code):
                d.deploy(variant)
                if other_version == "1.0.0":
                    d.deploy(self.other2)
                    other_version = "2.0.0"
                err = self.reload_error(d)
                refused = err["payload"]["refused"]
                self.assertEqual([(x["name"], x["reason_code"]) for x in refused], [("ver", code)], err)
                gen += 1
                p = self.plugins(d)
                self.assertEqual(p["generation"], gen)
                self.assertEqual([(x["name"], x["reason_code"], x["kept_previous"]) for x in p["refused"]],
                                 [("ver", code, True)])
                self.assertIsNone(p["last_reload_error"])
                loaded = {x["name"]: x for x in p["loaded"]}
                self.assertEqual(loaded["ver"]["version"], "1.0.0")
                self.assertEqual(loaded["ver"]["generation"], 1)
                self.assertEqual(loaded["other"]["version"], other_version)
                self.assertIn(f"refused plugin ver: ", d.logs())
                e = self.run_one(d, "demo", f"after-{code}")
                self.assertEqual((e["status"], self.logged_version(d, e)), ("succeeded", "1.0.0"))
                e = self.run_one(d, "second", f"other-{code}")
                self.assertEqual((e["status"], self.logged_version(d, e)), ("succeeded", "2.0.0"))
        # each reason is in the log too
        logs = d.logs()
        self.assertRegex(logs, r"refused plugin ver: .*keeping version 1\.0\.0 from generation 1")
        self.assertIn("downgrade", logs.lower())
        self.assertIn("abi", logs.lower())
        # old generations drained: one zygote
        self.wait_zygotes(d, 1)

    def test_burst_of_50_reloads_while_events_stream(self):
        # Under ASan, freed memory waits in a quarantine (256 MiB by default)
        # before it is reused, so VmRSS grows with everything freed; a small
        # quarantine makes VmRSS say what is really kept.
        asan = os.environ.get("ASAN_OPTIONS", "")
        d = self.start(extra_env={"ASAN_OPTIONS": (asan + ":" if asan else "") + "quarantine_size_mb=2"})
        pid = d.proc.pid
        # warm up (the allocator's first reloads and events) before measuring
        for _ in range(10):
            self.assertEqual(d.request("POST", "/reload")[0], 200)
        warm = self.Stream(self, d, "warm")
        wait_for(lambda: len(warm.created) >= 30, 20, what="warm-up events")
        warm.stop()
        self.wait_zygotes(d, 1)
        # the daemon holds one socket per executor the zygote forked ahead:
        # measure once the pool has refilled (the count stays put for 0.5 s)
        seen = [fd_count(pid), time.monotonic()]

        def steady():
            n = fd_count(pid)
            if n != seen[0]:
                seen[:] = [n, time.monotonic()]
            return time.monotonic() - seen[1] > 0.5
        wait_for(steady, 10, interval=0.05, what="the descriptor count to settle")
        fds0, rss0 = fd_count(pid), rss_kib(pid)
        gen0 = self.plugins(d)["generation"]

        stream = self.Stream(self, d, "b")
        posts = []

        def post_reload():
            st, _, body = d.request("POST", "/reload")
            posts.append(st)

        threads = []
        for i in range(50):
            if i % 5 == 4:
                t = threading.Thread(target=post_reload)
                t.start()
                threads.append(t)
            else:
                d.send_signal(signal.SIGHUP)
            time.sleep(0.01)
        for t in threads:
            t.join(60)
        # the API keeps answering during the burst
        t0 = time.monotonic()
        self.assertEqual(d.request("GET", "/healthz", auth=False)[0], 200)
        self.assertLess(time.monotonic() - t0, 1.0)
        # the burst coalesces: wait until the generation stops moving
        last = [None, time.monotonic()]

        def settled():
            g = self.plugins(d)["generation"]
            if g != last[0]:
                last[:] = [g, time.monotonic()]
            return time.monotonic() - last[1] > 1.5
        wait_for(settled, 60, interval=0.1, what="the reloads to settle")
        stream.stop()
        self.assertEqual(stream.errors, [])
        self.assertTrue(all(s in (200, 409) for s in posts), posts)
        gen = self.plugins(d)["generation"]
        self.assertGreater(gen, gen0 + 1)
        self.assertLessEqual(gen, gen0 + 50)

        ex = self.wait_done(d, len(stream.created) + len(warm.created), script="ver")
        conns = [e["connection_id"] for e in ex if e["connection_id"].startswith("b")]
        self.assertEqual(sorted(conns), sorted(c for c, _ in stream.created))  # each once, none lost
        self.assertTrue(all(e["status"] == "succeeded" for e in ex), [e for e in ex if e["status"] != "succeeded"])

        # nothing leaked: one zygote, the same descriptors, bounded memory
        self.wait_zygotes(d, 1)
        time.sleep(0.5)
        self.assertEqual(len(self.zygotes(d)), 1)
        wait_for(lambda: fd_count(pid) <= fds0, 5, what=f"fds back to {fds0}, have {fd_count(pid)}")
        rss1 = rss_kib(pid)
        self.assertLess(rss1 - rss0, 30 * 1024, f"VmRSS {rss0} -> {rss1} KiB")

    def test_removing_a_plugin_unloads_it(self):
        d = self.start()
        e = self.run_one(d, "demo", "present")
        self.assertEqual(e["status"], "succeeded")
        os.unlink(os.path.join(d.plugin_dir, "ver.so"))
        os.unlink(os.path.join(d.plugin_dir, "ver.so.minisig"))
        st, _, r = d.request("POST", "/reload")
        self.assertEqual(st, 200, r)
        self.assertEqual(r["refused"], [])
        self.assertNotIn("ver", self.loaded(d))
        self.assertIn("other", self.loaded(d))
        e = self.run_one(d, "demo", "absent")
        self.assertEqual(e["status"], "failed", e)
        self.assertTrue(e["error"].startswith("script not loaded"), e)
        e = self.run_one(d, "second", "still-there")
        self.assertEqual(e["status"], "succeeded", e)

    def test_sigterm_with_executions_running(self):
        d = self.start(drain_deadline_s=2)
        for cid in ("sleep800-finishes", "sleep8000-cut1", "sleep8000-cut2"):
            self.assertEqual(d.create_connection("demo", cid)[0], 201)
        wait_for(lambda: len([e for e in d.executions() if e["status"] == "running"]) == 3, 10,
                 what="three executions running")
        procs = descendants(d.proc.pid)
        self.assertGreaterEqual(len(procs), 4, procs)  # a zygote and three executors at least
        t0 = time.monotonic()
        d.send_signal(signal.SIGTERM)
        # no new requests while it drains
        wait_for(lambda: "no longer accepting connections" in d.logs(), 5, what="the API to stop")
        with self.assertRaises(OSError):
            d.request("GET", "/healthz", auth=False, timeout=2)
        self.assertIsNone(d.proc.poll())  # still draining
        code = d.stop(timeout=20)
        self.assertEqual(code, 0, d.logs())
        self.assertGreater(time.monotonic() - t0, 1.5)  # waited for drain_deadline_s
        self.assertLess(time.monotonic() - t0, 8)
        left = {p: s for p, s in procs.items() if alive(p, s)}
        self.assertEqual(left, {}, "processes left behind")
        logs = d.logs()
        self.assertIn("2 executions marked interrupted", logs)
        self.assertIn("stopped", logs.splitlines()[-1])
        self.assertNotIn("ERROR: AddressSanitizer", logs)
        self.assertNotIn("LeakSanitizer", logs)

        d.start()
        ex = {e["connection_id"]: e for e in self.all_executions(d)}
        self.assertEqual(ex["sleep800-finishes"]["status"], "succeeded")
        for cid in ("sleep8000-cut1", "sleep8000-cut2"):
            self.assertEqual(ex[cid]["status"], "interrupted", ex[cid])
            self.assertTrue(ex[cid]["error"].startswith("interrupted"), ex[cid])
        # not re-run by themselves
        time.sleep(0.5)
        self.assertEqual(len(self.all_executions(d)), 3)

    def test_json_logs(self):
        d = self.start(log_format="json")
        e = self.run_one(d, "demo", "json1")
        self.assertEqual(e["status"], "succeeded")
        d.stop()
        lines = [x for x in d.logs().splitlines() if x.strip() and not x.startswith("evscriptd listening")]
        self.assertGreater(len(lines), 3)
        docs = [json.loads(x) for x in lines]  # every line is one JSON object
        for doc in docs:
            self.assertTrue({"ts", "level", "part", "msg"} <= set(doc), doc)
        runs = [x for x in docs if x["part"] == "dispatch" and f"execution {e['id']}:" in x["msg"]]
        self.assertEqual(len(runs), 1, docs)  # one line per event
        self.assertIn("succeeded", runs[0]["msg"])


if __name__ == "__main__":
    unittest.main()
