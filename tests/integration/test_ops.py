"""The operator's view (issue 14): GET /metrics read by a real Prometheus
parser, and the live streams of executions and of one execution's logs.

The metrics text is parsed by prometheus_client.parser from Debian's
python3-prometheus-client, under /usr/bin/python3 (whatever python runs this
test). The streams are read as server-sent events over a plain socket; a
test plugin (gated) keeps an execution running, its first line logged, until
the test opens the gate at the fake provider: no sleep to guess.
"""

import http.client
import json
import signal
import subprocess
import unittest

from harness import SECRET, DaemonTest, wait_for

NANGO = """
integrations:
    demo:
        provider: local-test
        on-events:
            post-connection-creation:
                - hello
            pre-connection-deletion:
                - failmsg
    gate:
        provider: local-test
        on-events:
            post-connection-creation:
                - gated
    flood:
        provider: local-test
        on-events:
            post-connection-creation:
                - logflood
"""

PARSE = r"""
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = []
for fam in text_string_to_metric_families(sys.stdin.read()):
    for s in fam.samples:
        out.append({"family": fam.name, "type": fam.type, "name": s.name, "labels": s.labels, "value": s.value})
print(json.dumps(out))
"""


def parse_metrics(text):
    """[{family, type, name, labels, value}] as prometheus_client reads them."""
    proc = subprocess.run(["/usr/bin/python3", "-c", PARSE], input=text, capture_output=True, text=True,
                          timeout=60)
    if proc.returncode != 0:
        raise AssertionError("prometheus_client refused the text:\n" + proc.stderr + "\n" + text)
    return json.loads(proc.stdout)


class SSE:
    """A server-sent events reader over one HTTP connection."""

    def __init__(self, daemon, path, timeout=30):
        self.conn = http.client.HTTPConnection("127.0.0.1", daemon.port, timeout=timeout)
        self.conn.request("GET", path, headers={"Authorization": f"Bearer {SECRET}"})
        self.resp = self.conn.getresponse()
        self.status = self.resp.status
        self.headers = dict(self.resp.getheaders())

    def next(self):
        """The next event as (name, data as JSON), or None at the end of the stream."""
        name, data = None, []
        while True:
            line = self.resp.readline()
            if not line:
                return None
            line = line.decode().rstrip("\n")
            if line == "":
                if name or data:
                    return name, json.loads("\n".join(data))
                continue
            if line.startswith(":"):
                continue
            field, _, value = line.partition(": ")
            if field == "event":
                name = value
            elif field == "data":
                data.append(value)

    def until(self, pred, what):
        while True:
            ev = self.next()
            if ev is None:
                raise AssertionError(f"the stream ended before {what}")
            if pred(ev):
                return ev

    def close(self):
        self.conn.close()


class OpsTest(DaemonTest):
    def start(self, **settings):
        settings.setdefault("environment", {"FAIL_MESSAGE": "nope", "LOGFLOOD_LINES": "3000"})
        return self.daemon(NANGO, settings=settings, plugins=["hello"],
                           test_plugins=["failmsg", "gated", "logflood"])

    def connect(self, d, integration, cid):
        status, _, body = d.create_connection(integration, cid,
                                              connection_config={"port": str(self.provider.port)})
        self.assertEqual(status, 201, body)

    def metrics(self, d):
        status, hdrs, text = d.request("GET", "/metrics")
        self.assertEqual(status, 200, text)
        self.assertTrue(hdrs["Content-Type"].startswith("text/plain; version=0.0.4"), hdrs)
        return parse_metrics(text)

    def test_metrics_parse_with_the_labels_asked_for(self):
        d = self.start()
        self.provider.route("GET", "/gate", {"status": 404, "body": "closed"}, {"status": 200, "body": "open"})
        self.connect(d, "demo", "m1")
        self.connect(d, "gate", "g1")
        d.wait_executions(2)
        status, _, _ = d.request("DELETE", "/connections/m1?provider_config_key=demo")
        self.assertEqual(status, 200)
        d.request("POST", "/reload")
        samples = self.metrics(d)

        def value(name, **labels):
            got = [s["value"] for s in samples if s["name"] == name and s["labels"] == labels]
            self.assertEqual(len(got), 1, (name, labels, [s for s in samples if s["name"] == name]))
            return got[0]

        execs = [s for s in samples if s["name"] == "evscript_executions_total"]
        for s in execs:
            self.assertEqual(set(s["labels"]), {"integration", "script", "event", "status"}, s)
        self.assertEqual(value("evscript_executions_total", integration="demo", script="hello",
                               event="post-connection-creation", status="succeeded"), 1)
        self.assertEqual(value("evscript_executions_total", integration="demo", script="failmsg",
                               event="pre-connection-deletion", status="failed"), 1)
        self.assertEqual(value("evscript_executions_total", integration="gate", script="gated",
                               event="post-connection-creation", status="succeeded"), 1)
        families = {s["family"]: s["type"] for s in samples}
        self.assertEqual(families["evscript_execution_duration_seconds"], "histogram")
        self.assertEqual(value("evscript_execution_duration_seconds_count", event="post-connection-creation"), 2)
        # the gate answered 404 once, then 200
        self.assertEqual(value("evscript_proxy_requests_total", status="404"), 1)
        self.assertEqual(value("evscript_proxy_requests_total", status="200"), 1)
        self.assertEqual(value("evscript_events_pending"), 0)
        self.assertEqual(value("evscript_reloads_total"), 1)
        self.assertEqual(value("evscript_reload_failures_total"), 0)
        self.assertEqual(value("evscript_plugins_loaded"), 4)  # hello, failmsg, gated, logflood
        self.assertEqual(value("evscript_plugins_refused"), 0)
        for name in ("process_cpu_seconds_total", "process_resident_memory_bytes", "process_open_fds",
                     "process_max_fds", "process_virtual_memory_bytes", "process_start_time_seconds"):
            self.assertGreater(value(name), 0, name)
        self.assertEqual(families["process_cpu_seconds"], "counter")  # the parser drops _total

    def test_reload_failure_and_refusal_are_counted(self):
        d = self.start()
        with open(d.config_path + ".good", "w") as f, open(d.config_path) as g:
            f.write(g.read())
        with open(d.config_path, "a") as f:
            f.write("\nnot_a_key: 1\n")
        status, _, _ = d.request("POST", "/reload")
        self.assertEqual(status, 422)
        # a refused plugin: failmsg's signature no longer matches its bytes
        with open(d.config_path + ".good") as f, open(d.config_path, "w") as g:
            g.write(f.read())
        with open(f"{d.plugin_dir}/failmsg.so", "ab") as f:
            f.write(b"\0")
        status, _, _ = d.request("POST", "/reload")
        self.assertEqual(status, 422)
        samples = self.metrics(d)
        got = {s["name"]: s["value"] for s in samples if not s["labels"]}
        self.assertEqual(got["evscript_reloads_total"], 2)
        self.assertEqual(got["evscript_reload_failures_total"], 1)
        self.assertEqual(got["evscript_reload_refusals_total"], 1)
        self.assertEqual(got["evscript_plugins_refused"], 1)

    def test_logs_stream_follows_a_running_execution(self):
        d = self.start()
        self.provider.route("GET", "/gate", {"status": 404, "body": "closed"})
        self.connect(d, "gate", "live")
        ex = d.wait_executions(1, final=False, connection_id="live")[0]
        stream = SSE(d, f"/executions/{ex['id']}/logs/stream")
        try:
            self.assertEqual(stream.status, 200)
            self.assertTrue(stream.headers["Content-Type"].startswith("text/event-stream"), stream.headers)
            name, first = stream.next()
            self.assertEqual((name, first["id"], first["status"]), ("execution", ex["id"], "running"))
            name, line = stream.next()
            self.assertEqual(name, "log")
            self.assertEqual((line["seq"], line["level"], line["message"]), (1, "info", "waiting at the gate for live"))
            # the line came while the script still runs: it waits for the gate
            self.assertEqual(d.execution(ex["id"])["status"], "running")
            self.provider.route("GET", "/gate", {"status": 200, "body": "open"})
            # (the host logs each proxied request's outcome between them)
            name, line = stream.until(lambda ev: ev[0] != "log" or ev[1]["message"] == "through the gate",
                                      "the second line")
            self.assertEqual((name, line["level"]), ("log", "warn"))
            self.assertGreater(line["seq"], 2)
            end = stream.until(lambda ev: ev[0] == "end", "the end")[1]
            self.assertEqual(end["status"], "succeeded")
            self.assertIsNone(stream.next())  # the stream ends with the execution
        finally:
            stream.close()
        # a finished execution's stream: everything at once, then the end
        stream = SSE(d, f"/executions/{ex['id']}/logs/stream")
        try:
            events = []
            while (ev := stream.next()) is not None:
                events.append(ev)
            self.assertEqual([e[0] for e in events], ["execution"] + ["log"] * line["seq"] + ["end"])
            self.assertEqual([e[1]["seq"] for e in events[1:-1]], list(range(1, line["seq"] + 1)))
        finally:
            stream.close()
        status, _, body = d.request("GET", "/executions/999999/logs/stream")
        self.assertEqual((status, body["error"]["code"]), (404, "not_found"))

    def test_executions_stream_shows_new_and_finished_executions(self):
        d = self.start()
        self.provider.route("GET", "/gate", {"status": 404, "body": "closed"})
        self.connect(d, "demo", "before")
        d.wait_executions(1, connection_id="before")
        stream = SSE(d, "/executions/stream?integration=gate")
        try:
            self.assertEqual(stream.status, 200)
            self.connect(d, "demo", "other")  # filtered out
            self.connect(d, "gate", "s1")
            name, e = stream.next()
            self.assertEqual((name, e["connection_id"], e["script"], e["status"]), ("execution", "s1", "gated", "running"))
            self.provider.route("GET", "/gate", {"status": 200, "body": "open"})
            name, e2 = stream.next()
            self.assertEqual((name, e2["id"], e2["status"]), ("execution", e["id"], "succeeded"))
        finally:
            stream.close()
        # without filters the newest executions come first, oldest of them first
        stream = SSE(d, "/executions/stream?limit=2")
        try:
            ids = [stream.next()[1]["id"], stream.next()[1]["id"]]
            newest = [x["id"] for x in d.executions(limit=2)]
            self.assertEqual(ids, sorted(newest))
        finally:
            stream.close()
        status, _, body = d.request("GET", "/executions/stream?status=bogus")
        self.assertEqual((status, body["error"]["code"]), (400, "invalid_query_params"))

    def test_a_filtered_stream_shows_an_older_execution_that_comes_to_match(self):
        d = self.start()
        self.provider.route("GET", "/gate", {"status": 404, "body": "closed"})
        self.connect(d, "gate", "slow")
        held = d.wait_executions(1, final=False)[0]
        stream = SSE(d, "/executions/stream?status=succeeded")
        try:
            self.connect(d, "demo", "quick")
            name, e = stream.next()
            self.assertEqual((name, e["connection_id"], e["status"]), ("execution", "quick", "succeeded"))
            self.assertGreater(e["id"], held["id"])
            # the held one succeeds after a newer one was shown: it still comes
            self.provider.route("GET", "/gate", {"status": 200, "body": "open"})
            name, e = stream.next()
            self.assertEqual((name, e["id"], e["status"]), ("execution", held["id"], "succeeded"))
        finally:
            stream.close()

    def test_a_long_log_streams_whole_and_in_order(self):
        # 3000 lines of 1 KiB: more than a look sends at once
        d = self.start(log_lines_max=5000, log_bytes_max=8 << 20)
        self.connect(d, "flood", "f1")
        ex = d.wait_executions(1, connection_id="f1")[0]
        self.assertEqual(ex["status"], "succeeded")
        stream = SSE(d, f"/executions/{ex['id']}/logs/stream")
        try:
            events = []
            while (ev := stream.next()) is not None:
                events.append(ev)
        finally:
            stream.close()
        self.assertEqual(events[0][0], "execution")
        self.assertEqual(events[-1][0], "end")
        lines = [e[1] for e in events[1:-1]]
        self.assertEqual([l["seq"] for l in lines], list(range(1, 3001)))
        self.assertTrue(all(l["message"].startswith(f"{i} xxx") for i, l in enumerate(lines)))

    def test_open_streams_end_when_the_daemon_stops(self):
        d = self.start()
        self.provider.route("GET", "/gate", {"status": 404, "body": "closed"})
        self.connect(d, "gate", "held")
        ex = d.wait_executions(1, final=False)[0]
        logs = SSE(d, f"/executions/{ex['id']}/logs/stream")
        listing = SSE(d, "/executions/stream")
        try:
            self.assertEqual(logs.next()[0], "execution")
            self.assertEqual(listing.next()[0], "execution")
            d.send_signal(signal.SIGTERM)
            self.provider.route("GET", "/gate", {"status": 200, "body": "open"})  # let the script end
            # both streams end (rather than holding the shutdown), and the daemon exits cleanly
            while listing.next() is not None:
                pass
            while logs.next() is not None:
                pass
            self.assertEqual(d.stop(), 0, d.logs())
        finally:
            logs.close()
            listing.close()

    def test_plugin_lines_mirrored_to_the_daemon_log(self):
        d = self.start(log_plugin_lines=True)
        self.connect(d, "demo", "mirror")
        d.wait_executions(1, connection_id="mirror")
        wait_for(lambda: "plugin: hello (execution" in d.logs(), what="the mirrored line")
        line = [x for x in d.logs().splitlines() if "plugin: hello (execution" in x][0]
        self.assertIn("mirror", line)
        # off by default
        d2 = self.start()
        self.connect(d2, "demo", "quiet")
        d2.wait_executions(1, connection_id="quiet")
        d2.stop()
        self.assertNotIn("plugin: hello", d2.logs())


if __name__ == "__main__":
    unittest.main()
