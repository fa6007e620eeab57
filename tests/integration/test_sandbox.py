"""The executor's sandbox against a hostile plugin.

tests/plugins/src/hostile.c runs one attack per execution, named by the
connection's metadata, and logs `BLOCKED <attack>: ...` or
`ESCAPED <attack>: ...` for each attempt. Each test here runs one attack on
its own daemon (kill_daemon and kill_zygote would spoil a shared one) and
asserts that it was contained, from the inside and from the outside:

- the execution succeeded, logged at least one BLOCKED line and no ESCAPED
  line;
- the daemon and its zygote are alive with the same pids and /healthz
  answers; a well-behaved execution on another integration, started at the
  same time, succeeded;
- nothing reached the TCP and UDP listeners the test opens, nothing was
  written into the trusted keys directory (a copy of the development one),
  and no process the plugin forked (evs-stormer, evs-escapee) is left once
  the execution has ended;
- a fork storm stopped at the execution's process cap (max_processes).

The daemon runs with EVSCRIPT_SECRET_KEY and EVSCRIPT_ENCRYPTION_KEY in its
environment: the env attack looks for both values in the executor's. Its
config sets max_processes, the sandbox's per-execution process cap: a daemon
without the sandbox refuses that key, and without the key every attack here
escapes.
"""

import base64
import os
import shutil
import signal
import socket
import sqlite3
import tempfile
import threading
import time
import unittest

import pg_server
from harness import SECRET, STORE, DaemonTest, pg_dir, children, env, proc_stat, processes, wait_for

ATTACKS = ["env", "store", "zygote_mem", "daemon_mem", "ptrace", "network", "write_key",
           "fork_storm", "escape", "kill_zygote", "kill_daemon"]
MAX_PROCESSES = 8
NOBODY, NOGROUP = 65534, 65534
STORM = 3000
ENCRYPTION_KEY = base64.b64encode(os.urandom(32)).decode()
LEFTOVER_NAMES = ("evs-stormer", "evs-escapee")  # what hostile.c names its children

NANGO = """
integrations:
    good:
        provider: local-test
        on-events:
            post-connection-creation: [sleeper]
    quiet:
        provider: local-test
        on-events:
            post-connection-creation: [quiet]
    gate:
        provider: local-test
        on-events:
            post-connection-creation: [gated]
""" + "".join(f"""    attack-{name}:
        provider: local-test
        on-events:
            post-connection-creation: [hostile]
""" for name in ATTACKS)


def plugin_children():
    """{pid: comm} of the live processes named like hostile.c's children (a
    zombie is dead: reaping it is its parent's business)."""
    return {pid: st.comm for pid, st in processes().items()
            if st.comm in LEFTOVER_NAMES and st.state != "Z"}


def descends_from(pid, ancestor, table):
    while pid in table and pid > 1:
        pid = table[pid].ppid
        if pid == ancestor:
            return True
    return False


def assert_sandbox_complete(test, d, root):
    """The daemon's start-up line says which layers apply and which are
    MISSING: these tests claim all of them, so a machine without one fails
    here rather than passing on the others."""
    [line] = [l for l in d.logs().splitlines() if "executor: generation 1: sandbox: " in l]
    test.assertNotIn("MISSING", line)
    for layer in ("pid namespace", "user namespace", "no_new_privs", "landlock", "seccomp"):
        test.assertIn(layer, line)
    if root:
        test.assertIn("uid 65534 gid 65534", line)  # sandbox_user's default, nobody
    else:
        test.assertNotIn("uid ", line)  # an unprivileged daemon's executors keep its uid


class Listener:
    """A TCP and a UDP socket on 127.0.0.1 that record whoever reaches them."""

    def __init__(self):
        self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.tcp.bind(("127.0.0.1", 0))
        self.tcp.listen(16)
        self.tcp.settimeout(0.2)
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", 0))
        self.udp.settimeout(0.2)
        self.port = self.tcp.getsockname()[1]
        self.udp_port = self.udp.getsockname()[1]
        self.connections = []  # (peer, first bytes)
        self.datagrams = []    # (peer, bytes)
        self.closing = False
        self.threads = [threading.Thread(target=f, daemon=True) for f in (self.accept, self.receive)]
        for t in self.threads:
            t.start()

    def accept(self):
        while not self.closing:
            try:
                conn, peer = self.tcp.accept()
            except (socket.timeout, OSError):
                continue
            with conn:
                conn.settimeout(1)
                try:
                    data = conn.recv(64)
                except OSError:
                    data = b""
            self.connections.append((peer, data))

    def receive(self):
        while not self.closing:
            try:
                data, peer = self.udp.recvfrom(64)
            except (socket.timeout, OSError):
                continue
            self.datagrams.append((peer, data))

    def close(self):
        self.closing = True
        for t in self.threads:
            t.join()
        self.tcp.close()
        self.udp.close()


class SandboxTest(DaemonTest):
    def setUp(self):
        super().setUp()
        self.listener = Listener()
        self.workdir = tempfile.mkdtemp(prefix="evs-sandbox-")
        self.keys_dir = os.path.join(self.workdir, "keys")
        shutil.copytree(env("EVS_TRUSTED_DIR"), self.keys_dir)
        self.keys_before = sorted(os.listdir(self.keys_dir))
        self.strangers = set(plugin_children())  # not this test's
        self.d = None

    def tearDown(self):
        # what the plugin left behind, before the daemon (its ancestor) goes
        if self.d and self.d.proc:
            table = processes()
            for pid, st in table.items():
                if st.comm in LEFTOVER_NAMES and descends_from(pid, self.d.proc.pid, table):
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
        self.listener.close()
        super().tearDown()  # stops the daemon, removes its directory
        shutil.rmtree(self.workdir, ignore_errors=True)

    unprivileged = False  # the daemon runs as nobody (UnprivilegedSandboxTest)

    def start(self):
        self.d = self.daemon(NANGO, start=False, workdir=self.workdir, test_plugins=["hostile", "sleeper"],
                             settings={"trusted_keys_dir": self.keys_dir,
                                       "max_processes": MAX_PROCESSES,
                                       "deadline_s": 30,
                                       "environment": {"SLEEPER_MS": "300"}})
        if self.unprivileged:
            # the build tree may sit where nobody cannot reach (a home
            # directory): the daemon, its zygote and the catalogue go along
            bindir = os.path.join(self.workdir, "bin")
            os.makedirs(bindir)
            for path in (env("EVSCRIPTD"), os.path.join(os.path.dirname(env("EVSCRIPTD")), "evscript-zygote")):
                shutil.copy2(path, bindir)
            shutil.copy2(env("EVS_PROVIDERS"), os.path.join(self.workdir, "providers.yaml"))
            self.d.settings["providers"] = "./providers.yaml"
            self.d.write_config()
            self.d.executable = os.path.join(bindir, "evscriptd")
            for root, dirs, files in os.walk(self.workdir):
                for name in dirs + files + ["."]:
                    os.chown(os.path.join(root, name), NOBODY, NOGROUP)
            self.d.command_prefix = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOGROUP}",
                                     "--clear-groups", "--no-new-privs"]
        self.d.start(extra_env={"EVSCRIPT_SECRET_KEY": SECRET, "EVSCRIPT_ENCRYPTION_KEY": ENCRYPTION_KEY})
        assert_sandbox_complete(self, self.d, root=os.geteuid() == 0 and not self.unprivileged)
        return self.d

    def zygote(self, d):
        [pid] = [p for p, st in children(d.proc.pid).items() if st.comm == "evscript-zygote"]
        return pid

    def connect(self, d, integration, connection_id, **kw):
        status, _, body = d.create_connection(integration, connection_id, **kw)
        self.assertEqual(status, 201, body)

    def finished(self, d, connection_id):
        """The execution on connection_id once it has ended, or None when
        the daemon exited first."""
        def done():
            if d.proc.poll() is not None:
                return "exited"
            try:
                ex = d.executions(connection_id=connection_id)
            except OSError:  # it is going away: the next look tells
                return None
            return ex[0] if ex and ex[0]["status"] not in ("pending", "running") else None
        ex = wait_for(done, timeout=60, what=f"the execution on {connection_id} to end")
        return None if ex == "exited" else ex

    def journaled_logs(self, d, connection_id):
        """The log lines of the execution on connection_id, read from the
        store: when the daemon is gone, so is its API."""
        if STORE == "pg":
            try:
                out = pg_server.psql(pg_dir(), "SELECT l.message FROM execution_logs l JOIN executions e"
                                     " ON e.id = l.execution_id WHERE e.connection_id = '" +
                                     connection_id.replace("'", "''") + "' ORDER BY l.execution_id, l.seq",
                                     db=d.pg_database)
            except RuntimeError as e:
                return [f"(the store could not be read: {e})"]
            return out.split("\n") if out else []
        db = sqlite3.connect(f"file:{os.path.join(d.dir, 'evscript.db')}?mode=ro", uri=True)
        try:
            rows = db.execute("SELECT l.message FROM execution_logs l JOIN executions e ON e.id = l.execution_id "
                              "WHERE e.connection_id = ? ORDER BY l.execution_id, l.seq", (connection_id,))
            return [r[0] for r in rows]
        except sqlite3.Error as e:
            return [f"(the store could not be read: {e})"]
        finally:
            db.close()

    def leftovers(self):
        return {pid: comm for pid, comm in plugin_children().items() if pid not in self.strangers}

    def run_attack(self, name, **params):
        """Runs one attack beside a well-behaved execution; returns the
        attack's log lines, after checking everything every attack must
        leave untouched. Every problem found is reported at once."""
        d = self.start()
        daemon_pid, zygote_pid = d.proc.pid, self.zygote(d)
        meta = {"attack": name, "daemon_pid": daemon_pid, "zygote_pid": zygote_pid}
        meta.update(params)
        self.connect(d, "good", f"good-{name}")
        self.connect(d, f"attack-{name}", name, metadata=meta)

        problems = []
        ex = self.finished(d, name)
        if d.proc.poll() is not None:
            problems.append(f"evscriptd (pid {daemon_pid}) exited with {d.proc.returncode} during the attack")
            messages = self.journaled_logs(d, name)
        else:
            good = self.finished(d, f"good-{name}")
            messages = [line["message"] for line in d.execution(ex["id"])["logs"]]
            if ex["status"] != "succeeded":
                problems.append(f"the attack's execution ended {ex['status']}: {ex['error']}")
            if good is None or good["status"] != "succeeded":
                problems.append(f"the well-behaved execution beside it ended {good and good['status']}: "
                                f"{good and good['error']}")
            status, _, body = d.request("GET", "/healthz", auth=False)
            if (status, body) != (200, {"status": "ok"}):
                problems.append(f"/healthz answered {status} {body}")
            zygote = proc_stat(zygote_pid)
            if not zygote or zygote.comm != "evscript-zygote" or zygote.state == "Z" or zygote.ppid != daemon_pid:
                problems.append(f"the zygote (pid {zygote_pid}) is gone: {zygote}")

        escaped = [m for m in messages if m.startswith("ESCAPED ")]
        if escaped:
            problems.append("the plugin escaped:\n    " + "\n    ".join(escaped))
        if not any(m.startswith(f"BLOCKED {name}: ") for m in messages):
            problems.append(f"no 'BLOCKED {name}: ' line")
        if self.listener.connections:
            problems.append(f"TCP connections reached the listener: {self.listener.connections}")
        if self.listener.datagrams:
            problems.append(f"UDP datagrams reached the listener: {self.listener.datagrams}")
        keys_after = sorted(os.listdir(self.keys_dir))
        if keys_after != self.keys_before:
            problems.append(f"the trusted keys directory changed: {self.keys_before} -> {keys_after}")
        try:
            wait_for(lambda: not self.leftovers(), timeout=3, interval=0.1, what="no leftover process")
        except AssertionError:
            left = self.leftovers()
            problems.append(f"{len(left)} processes outlived the execution: "
                            f"{sorted(set(left.values()))} (pids {sorted(left)[:10]}...)")
        if problems:
            self.fail(f"attack {name} was not contained:\n  - " + "\n  - ".join(problems) +
                      "\n  the attack's log:\n    " + "\n    ".join(messages))
        return messages

    def test_env(self):
        messages = self.run_attack("env", secret=SECRET, enc_key=ENCRYPTION_KEY)
        self.assertTrue(any(m.startswith("ENV ") for m in messages), messages)

    @unittest.skipIf(STORE == "pg", "the attack opens the SQLite file; a PostgreSQL store is no file "
                     "(reaching its server over the network is test_network's attack)")
    def test_store(self):
        path = os.path.join(self.workdir, "evscript.db")
        self.run_attack("store", store=path)
        # what it tried to open was there to be opened
        self.assertTrue(os.path.exists(path + "-wal"))

    def test_zygote_mem(self):
        self.run_attack("zygote_mem")

    def test_daemon_mem(self):
        self.run_attack("daemon_mem")

    def test_ptrace(self):
        self.run_attack("ptrace")

    def test_network(self):
        self.run_attack("network", port=self.listener.port, udp_port=self.listener.udp_port)

    def test_write_key(self):
        self.run_attack("write_key", trusted_keys_dir=self.keys_dir, secret_keyfile=env("EVS_SECRET_KEYFILE"))

    def test_fork_storm(self):
        messages = self.run_attack("fork_storm", n=STORM)
        [forked] = [int(m.split()[1]) for m in messages if m.startswith("FORKED ")]
        self.assertLess(forked, STORM)
        self.assertLessEqual(forked, MAX_PROCESSES)

    def test_escape(self):
        self.run_attack("escape")

    def test_kill_zygote(self):
        self.run_attack("kill_zygote")

    def test_kill_daemon(self):
        self.run_attack("kill_daemon")


@unittest.skipUnless(os.geteuid() == 0, "needs root to start the daemon as nobody")
class UnprivilegedSandboxTest(SandboxTest):
    """Every attack again, with the daemon itself unprivileged (nobody, no
    capabilities, no_new_privs): the executors then share its uid, so the
    PID namespace, the non-dumpable daemon and zygote, Landlock and seccomp
    are what stand between them."""
    unprivileged = True


class SupervisedZygoteTest(DaemonTest):
    """The zygote killed (kill -9) under load: the daemon notices at once,
    says so, records what it ran as crashed with the reason, starts a new
    zygote over the same plugins, and the events that arrive meanwhile wait
    for it instead of failing."""

    def test_zygote_killed_under_load(self):
        d = self.daemon(NANGO, test_plugins=["sleeper", "gated"],
                        settings={"environment": {"SLEEPER_MS": "1500"}, "max_concurrency": 8})
        assert_sandbox_complete(self, d, root=os.geteuid() == 0)
        old = [p for p, st in children(d.proc.pid).items() if st.comm == "evscript-zygote"]
        self.assertEqual(len(old), 1, old)
        # four runs that have begun (each logged its first line) and wait at
        # a closed gate; one that had not begun would be run again
        # (test_run_lost_before_it_spoke_runs_again)
        self.provider.route("GET", "/gate", {"status": 404, "body": "closed"})
        for i in range(4):
            self.assertEqual(d.create_connection("gate", f"before-{i}",
                                                 connection_config={"port": str(self.provider.port)})[0], 201)

        def begun():
            running = [e for e in d.executions() if e["status"] == "running"]
            return len(running) == 4 and all(d.execution(e["id"])["logs"] for e in running)
        wait_for(begun, what="4 executions running, each with its first line logged")
        os.kill(old[0], signal.SIGKILL)
        # events that arrive while the zygote is gone or restarting
        for i in range(6):
            self.assertEqual(d.create_connection("good", f"after-{i}")[0], 201)

        done = d.wait_executions(10, timeout=60)
        by_conn = {e["connection_id"]: e for e in done}
        for i in range(4):
            e = by_conn[f"before-{i}"]
            self.assertEqual(e["status"], "crashed", e)
            self.assertIn("zygote died", e["error"])
        for i in range(6):
            self.assertEqual(by_conn[f"after-{i}"]["status"], "succeeded", by_conn[f"after-{i}"])

        logs = d.logs()
        self.assertIn(f"the zygote (pid {old[0]}) killed by SIGKILL", logs)
        self.assertIn("zygote restarted", logs)
        table = children(d.proc.pid)
        new = [p for p, st in table.items() if st.comm == "evscript-zygote"]
        self.assertEqual(len(new), 1, new)
        self.assertNotEqual(new[0], old[0])
        self.assertNotEqual(table[new[0]].state, "Z")
        self.assertIsNone(proc_stat(old[0]), "the dead zygote was not reaped")
        self.assertEqual(d.request("GET", "/healthz", auth=False)[::2], (200, {"status": "ok"}))
        status, _, metrics = d.request("GET", "/metrics")
        self.assertEqual(status, 200)
        self.assertIn("evscript_zygote_restarts_total 1\n", metrics)
        self.assertIn("evscript_zygote_up 1\n", metrics)

    def test_run_lost_before_it_spoke_runs_again(self):
        # quiet sleeps 1.5 s before its first host call: killed with its
        # zygote meanwhile, it has done nothing anyone could see, so the
        # run is not lost but run again on the next zygote's executor
        d = self.daemon(NANGO, test_plugins=["quiet"])
        old = [p for p, st in children(d.proc.pid).items() if st.comm == "evscript-zygote"]
        self.assertEqual(len(old), 1, old)
        self.assertEqual(d.create_connection("quiet", "q-1")[0], 201)
        wait_for(lambda: [e for e in d.executions() if e["status"] == "running"],
                 what="the execution running")
        time.sleep(0.3)  # into its sleep (earlier, the job is simply not started yet)
        os.kill(old[0], signal.SIGKILL)
        done = d.wait_executions(1, timeout=30)
        self.assertEqual(len(done), 1, done)  # one record: the run, not a second execution
        e = d.execution(done[0]["id"])
        self.assertEqual(e["status"], "succeeded", e)
        self.assertEqual([line["message"] for line in e["logs"]], [f"woke for event {e['event_id']}"])
        logs = d.logs()
        self.assertIn("zygote restarted", logs)
        self.assertIn("a run lost with its zygote before it began runs again", logs)

    def test_a_quiet_run_past_its_deadline_is_the_zygotes_to_stop(self):
        # the daemon tells the zygote of a run only once it lasts (20 ms,
        # or its first host call): quiet makes none before its deadline,
        # and the zygote still stops it at the deadline, as a timeout
        d = self.daemon(NANGO, test_plugins=["quiet"], settings={"scripts": {"quiet": {"deadline_s": 1}}})
        self.assertEqual(d.create_connection("quiet", "q-1")[0], 201)
        done = d.wait_executions(1, timeout=30)
        self.assertEqual((done[0]["status"], done[0]["error"]), ("timed_out", "timed out after 1 s"), done)


if __name__ == "__main__":
    unittest.main()
