"""The journal through store failures: a small filesystem (tmpfs) holding
the store fills up while executions run. What the store refuses is kept
and retried: no client is told an execution finished before its record is
written, and once space returns nothing stays running or claimed. Needs
root (to mount the tmpfs); skipped otherwise."""
import errno
import os
import sqlite3
import subprocess
import threading
import time
import unittest

from harness import DaemonTest, wait_for

NANGO = """
integrations:
    events:
        provider: local-test
        on-events:
            post-connection-creation:
                - sleeper
    plain:
        provider: local-test
    actions:
        provider: local-test
        actions:
            slowecho:
                description: sleeps, then returns its input
"""


def fill(directory):
    """Writes a file into directory until the filesystem is full."""
    path = os.path.join(directory, "filler")
    block = b"\0" * 65536
    with open(path, "wb", buffering=0) as f:
        while True:
            try:
                f.write(block)
            except OSError as e:
                if e.errno != errno.ENOSPC:
                    raise
                break
        for size in (4096, 512, 1):  # the last partial blocks
            try:
                while True:
                    f.write(b"\0" * size)
            except OSError as e:
                if e.errno != errno.ENOSPC:
                    raise
    return path


@unittest.skipUnless(os.geteuid() == 0, "mounting a tmpfs needs root")
class StoreFaultsTest(DaemonTest):
    def setUp(self):
        super().setUp()
        self.mounts = []

    def tearDown(self):
        super().tearDown()
        for m in self.mounts:
            subprocess.run(["umount", "-l", m], check=False)

    def test_full_disk_during_executions(self):
        d = self.daemon(NANGO, start=False, test_plugins=["sleeper", "slowecho"],
                        settings={"store": "sqlite:./store/evscript.db",
                                  "environment": {"SLEEPER_MS": "1500"}})
        store_dir = os.path.join(d.dir, "store")
        os.makedirs(store_dir)
        m = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", store_dir],
                           capture_output=True, text=True)
        if m.returncode != 0:
            self.skipTest(f"cannot mount a tmpfs here: {m.stderr.strip()}")
        self.mounts.append(store_dir)
        d.start()
        self.assertEqual(d.create_connection("plain", "warm")[0], 201)
        self.assertEqual(d.create_connection("actions", "act")[0], 201)

        # An action and an event's script in flight...
        action = {}

        def trigger():
            action["reply"] = d.request("POST", "/action/trigger", {"action_name": "slowecho", "input": {"n": 1}},
                                        headers={"Connection-Id": "act", "Provider-Config-Key": "actions"})
        t = threading.Thread(target=trigger)
        t.start()
        self.assertEqual(d.create_connection("events", "slow-1")[0], 201)
        wait_for(lambda: len([e for e in d.executions() if e["status"] == "running"]) == 2, 10,
                 what="the action and the script running")

        # ...when the store's filesystem fills up.
        filler = fill(store_dir)
        t.join(30)
        st, _, body = action["reply"]
        self.assertEqual(st, 503, body)  # not a 200 whose record is missing
        self.assertEqual(body["error"]["code"], "store_unavailable", body)
        xid = [e["id"] for e in d.executions() if e["script"] == "slowecho"][0]
        self.assertIn(str(xid), body["error"]["message"])
        # a creation cannot be acknowledged now: an error, in JSON
        st, _, body = d.create_connection("plain", "during-full")
        self.assertGreaterEqual(st, 500, body)
        self.assertIn("error", body)
        wait_for(lambda: "the store refused its end" in d.logs(), 10, what="the refused ends logged")
        self.assertEqual(d.request("GET", "/healthz", auth=False)[0], 200)

        # Space returns: every end is written, nothing stays running or claimed.
        os.unlink(filler)
        wait_for(lambda: not [e for e in d.executions() if e["status"] == "running"], 20,
                 what="no execution left running")
        ex = {e["script"]: e for e in d.executions()}
        self.assertEqual(ex["slowecho"]["status"], "succeeded", ex)
        self.assertEqual(ex["sleeper"]["status"], "succeeded", ex)
        st, _, full = d.request("GET", f"/executions/{xid}")
        self.assertEqual(st, 200, full)
        self.assertTrue(any("slept" in line["message"] for line in full["logs"]), full)
        db = sqlite3.connect(f"file:{os.path.join(store_dir, 'evscript.db')}?mode=ro", uri=True)
        try:
            claimed = db.execute("SELECT count(*) FROM events WHERE status = 'claimed'").fetchone()[0]
            ok = db.execute("PRAGMA integrity_check").fetchone()[0]
        finally:
            db.close()
        self.assertEqual(claimed, 0)
        self.assertEqual(ok, "ok")
        self.assertIn("its end is recorded now", d.logs())
        # and the store takes new work again
        self.assertEqual(d.create_connection("events", "after")[0], 201)
        wait_for(lambda: any(e["connection_id"] == "after" and e["status"] == "succeeded"
                             for e in d.executions()), 20, what="the next event's script")


if __name__ == "__main__":
    unittest.main()
