"""evscript's commands for a running daemon (issue 14): status, plugins,
reload, connections, executions [--follow], logs ID [--follow], found with
--url / EVSCRIPT_URL and --secret-key / EVSCRIPT_SECRET_KEY.

The follows run as real processes whose output is read line by line as the
daemon streams it; the gated test plugin holds an execution running until
the test opens the gate at the fake provider.
"""

import json
import os
import queue
import subprocess
import threading
import unittest

from harness import SECRET, DaemonTest, env

NANGO = """
integrations:
    demo:
        provider: local-test
        on-events:
            post-connection-creation:
                - hello
    gate:
        provider: local-test
        on-events:
            post-connection-creation:
                - gated
"""


class Lines:
    """The stdout lines of a running process, read by a thread."""

    def __init__(self, proc):
        self.proc = proc
        self.q = queue.Queue()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        for line in self.proc.stdout:
            self.q.put(line.rstrip("\n"))
        self.q.put(None)

    def next(self, timeout=30):
        line = self.q.get(timeout=timeout)
        if line is None:
            raise AssertionError("the command ended: " + self.proc.stderr.read())
        return line

    def until(self, needle, timeout=30):
        while True:
            line = self.next(timeout)
            if needle in line:
                return line


class CliRemoteTest(DaemonTest):
    def setUp(self):
        super().setUp()
        self.d = self.daemon(NANGO, plugins=["hello"], test_plugins=["gated"])
        self.cli = env("EVSCRIPT_CLI")

    def env(self, **extra):
        e = dict(os.environ)
        e.pop("EVSCRIPT_URL", None)
        e.pop("EVSCRIPT_SECRET_KEY", None)
        e.update(extra)
        return e

    def run_cli(self, *args, secret=SECRET, url=None, **kw):
        e = self.env(EVSCRIPT_URL=url or self.d.url)
        if secret is not None:
            e["EVSCRIPT_SECRET_KEY"] = secret
        return subprocess.run([self.cli, *args], env=e, capture_output=True, text=True, timeout=60, **kw)

    def spawn(self, *args):
        proc = subprocess.Popen([self.cli, *args, "--url", self.d.url, "--secret-key", SECRET], env=self.env(),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.addCleanup(lambda: (proc.poll() is None and proc.kill(), proc.wait()))
        return proc, Lines(proc)

    def connect(self, integration, cid):
        status, _, body = self.d.create_connection(integration, cid,
                                                   connection_config={"port": str(self.provider.port)})
        self.assertEqual(status, 201, body)

    def test_status_plugins_connections_executions_logs(self):
        self.connect("demo", "c-one")
        ex = self.d.wait_executions(1)[0]
        r = self.run_cli("status")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(f"evscriptd at {self.d.url}: ok", r.stdout)
        self.assertRegex(r.stdout, r"loaded +hello +1\.0\.0 +event")
        r = self.run_cli("plugins", "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(sorted(p["name"] for p in json.loads(r.stdout)["loaded"]), ["gated", "hello"])
        r = self.run_cli("connections")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout, r"^c-one +demo +local-test ")
        r = self.run_cli("executions", "--integration", "demo", "--status", "succeeded")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout, rf"^{ex['id']} +succeeded +post-connection-creation +demo/c-one hello@1\.0\.0 ")
        r = self.run_cli("executions", "--integration", "gate")
        self.assertEqual((r.returncode, r.stdout), (0, ""), r.stderr)
        r = self.run_cli("logs", str(ex["id"]))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout, r"Z info +post-connection-creation for connection c-one\n")

    def test_url_and_secret_from_flags_env_and_errors(self):
        # flags win over the environment
        r = self.run_cli("status", "--url", self.d.url, "--secret-key", SECRET, url="http://127.0.0.1:1",
                         secret="wrong")
        self.assertEqual(r.returncode, 0, r.stderr)
        r = self.run_cli("plugins", url=self.d.url + "/")  # a trailing slash names the same daemon
        self.assertEqual(r.returncode, 0, r.stderr)
        r = self.run_cli("plugins", secret="wrong")
        self.assertEqual(r.returncode, 1)
        self.assertIn("401 unauthorized: check --secret-key or EVSCRIPT_SECRET_KEY", r.stderr)
        r = self.run_cli("plugins", secret=None)
        self.assertEqual(r.returncode, 2)
        self.assertIn("--secret-key KEY or EVSCRIPT_SECRET_KEY", r.stderr)
        r = self.run_cli("status", url="http://127.0.0.1:1")
        self.assertEqual(r.returncode, 1)
        self.assertIn("is evscriptd running there?", r.stderr)
        r = self.run_cli("logs", "abc")
        self.assertEqual(r.returncode, 1)
        self.assertIn("not an execution id", r.stderr)
        r = self.run_cli("logs", "424242")
        self.assertEqual(r.returncode, 1)
        self.assertIn("404 not_found", r.stderr)
        r = self.run_cli("plugins", "--follow")
        self.assertEqual(r.returncode, 2)
        # the default URL is http://127.0.0.1:3003
        e = self.env(EVSCRIPT_SECRET_KEY=SECRET)
        r = subprocess.run([self.cli, "status"], env=e, capture_output=True, text=True, timeout=60)
        self.assertIn("http://127.0.0.1:3003", r.stdout + r.stderr)

    def test_reload_prints_what_it_loaded_or_refused(self):
        r = self.run_cli("reload")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("generation 2: 2 loaded, 0 refused", r.stdout)
        with open(os.path.join(self.d.plugin_dir, "hello.so"), "ab") as f:
            f.write(b"\0")
        r = self.run_cli("reload")
        self.assertEqual(r.returncode, 1)
        self.assertRegex(r.stdout, r"generation 3: 1 refused\n +refused +hello\.so +bad_signature: .*\(the previous version runs\)")
        self.assertIn("evscript reload: hello.so:", r.stderr)
        r = self.run_cli("plugins")
        self.assertEqual(r.returncode, 1)  # a refusal stands
        self.assertRegex(r.stdout, r"refused +hello\.so +bad_signature")

    def test_logs_follow_prints_lines_as_they_are_logged(self):
        self.provider.route("GET", "/gate", {"status": 404, "body": "closed"})
        self.connect("gate", "live")
        ex = self.d.wait_executions(1, final=False)[0]
        proc, lines = self.spawn("logs", str(ex["id"]), "--follow")
        self.assertRegex(lines.next(), r"Z info +waiting at the gate for live$")
        self.assertEqual(self.d.execution(ex["id"])["status"], "running")
        self.provider.route("GET", "/gate", {"status": 200, "body": "open"})
        self.assertRegex(lines.until("through the gate"), r"Z warn +through the gate$")
        self.assertEqual(proc.wait(30), 0)
        self.assertIn(f"-- execution {ex['id']} succeeded", proc.stderr.read())

    def test_executions_follow_prints_starts_and_ends(self):
        self.provider.route("GET", "/gate", {"status": 404, "body": "closed"})
        self.connect("demo", "old")
        self.d.wait_executions(1)
        proc, lines = self.spawn("executions", "--follow")
        self.assertRegex(lines.next(), r" succeeded +post-connection-creation +demo/old hello@1\.0\.0 ")
        self.connect("gate", "new")
        self.assertRegex(lines.next(), r" running +post-connection-creation +gate/new gated@1\.0\.0 ")
        self.provider.route("GET", "/gate", {"status": 200, "body": "open"})
        self.assertRegex(lines.next(), r" succeeded +post-connection-creation +gate/new gated@1\.0\.0 ")
        self.assertIsNone(proc.poll())  # follows until stopped, or until the daemon stops
        self.assertEqual(self.d.stop(), 0)
        self.assertEqual(proc.wait(30), 1)
        self.assertIn("the daemon ended the stream", proc.stderr.read())


if __name__ == "__main__":
    unittest.main()
