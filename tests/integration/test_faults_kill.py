"""Exactly once through kill -9 (issue 15): clients create connections (each
request with an Idempotency-Key, retried with the same key when the daemon
dies under it) and delete some, while the daemon is killed with SIGKILL at
random moments and restarted. Afterwards: no acknowledged creation or
deletion is lost, no connection has a second event or execution, nothing is
left running or claimed, and SQLite's integrity_check says ok.

EVS_KILLS sets the number of kills (20 by default, so that CI stays short;
docs/operations.md gives the figures of a long run); EVS_KILL_SEED the random
seed (printed, to replay a failure)."""

import os
import random
import sqlite3
import threading
import time

import unittest

from harness import STORE, DaemonTest

KILLS = int(os.environ.get("EVS_KILLS", "20"))
SEED = int(os.environ.get("EVS_KILL_SEED", str(random.randrange(1 << 30))))

NANGO = """
integrations:
    demo:
        provider: local-test
        on-events:
            post-connection-creation:
                - noop
"""


class Client(threading.Thread):
    """Creates connections t<k>-<n> one after the other; every `delete_every`
    th one is then deleted. A request whose answer is lost to a kill is sent
    again as it was (the same Idempotency-Key) until it gets one."""

    def __init__(self, d, k, stop, delete_every=5):
        super().__init__(daemon=True)
        self.d, self.k, self.stop, self.delete_every = d, k, stop, delete_every
        self.created, self.deleted, self.errors = [], [], []

    def call(self, method, path, body=None, headers=None):
        while True:
            try:
                status, _, doc = self.d.request(method, path, body, headers=headers, timeout=15)
            except OSError:
                status, doc = None, None
            if status is not None and status < 500 and status != 409:
                return status, doc
            if status is not None and status >= 500 and not self.stop.is_set():
                # 503 while stopping, or a store error: retried like a lost answer
                pass
            time.sleep(0.05)

    def run(self):
        n = 0
        while not self.stop.is_set():
            cid = f"t{self.k}-{n}"
            body = {"provider_config_key": "demo", "connection_id": cid,
                    "credentials": {"type": "API_KEY", "apiKey": "k-" + cid}}
            status, doc = self.call("POST", "/connections", body, {"Idempotency-Key": "create-" + cid})
            if status == 201:
                self.created.append(cid)
            else:
                self.errors.append((cid, status, doc))
            if n % self.delete_every == self.delete_every - 1:
                status, doc = self.call("DELETE", f"/connections/{cid}?provider_config_key=demo")
                if status in (200, 204, 404):
                    self.deleted.append(cid)
                else:
                    self.errors.append((cid, status, doc))
            n += 1


class KillNine(DaemonTest):
    @unittest.skipIf(STORE == "pg", "reads the SQLite file for its verdict (counts and integrity_check)")
    def test_random_kills_lose_and_duplicate_nothing(self):
        rng = random.Random(SEED)
        print(f"EVS_KILL_SEED={SEED} EVS_KILLS={KILLS}")
        d = self.daemon(NANGO, test_plugins=["noop"])
        stop = threading.Event()
        clients = [Client(d, k, stop) for k in range(4)]
        for c in clients:
            c.start()
        for _ in range(KILLS):
            time.sleep(rng.uniform(0.2, 1.2))
            d.kill9()
            d.start()
        time.sleep(1)
        stop.set()
        for c in clients:
            c.join(120)
            self.assertFalse(c.is_alive())
            self.assertEqual(c.errors, [])
        created = {cid for c in clients for cid in c.created}
        deleted = {cid for c in clients for cid in c.deleted}
        kept = created - deleted
        self.assertGreater(len(kept), KILLS)

        # let the events still pending run, then stop cleanly
        def settled():
            db = sqlite3.connect(os.path.join(d.dir, "evscript.db"), timeout=10)
            try:
                busy = db.execute("SELECT count(*) FROM events WHERE status IN ('pending', 'claimed')").fetchone()[0]
                busy += db.execute("SELECT count(*) FROM executions WHERE status = 'running'").fetchone()[0]
                return busy == 0
            finally:
                db.close()
        from harness import wait_for
        wait_for(settled, 120, interval=0.2, what="every event run")
        self.assertEqual(d.stop(), 0)

        db = sqlite3.connect(os.path.join(d.dir, "evscript.db"))
        try:
            self.assertEqual(db.execute("PRAGMA integrity_check").fetchall(), [("ok",)])
            rows = {r[0] for r in db.execute("SELECT connection_id FROM connections WHERE provider_config_key = 'demo'")}
            self.assertEqual(kept - rows, set(), "acknowledged creations lost")
            self.assertEqual(rows & deleted, set(), "acknowledged deletions lost")
            events = {}
            for cid, status, n_exec, statuses in db.execute(
                    "SELECT e.connection_id, e.status, count(x.id), group_concat(x.status)"
                    " FROM events e LEFT JOIN executions x ON x.event_id = e.id"
                    " WHERE e.type = 'post-connection-creation' GROUP BY e.id"):
                events.setdefault(cid, []).append((status, n_exec, statuses))
            for cid in sorted(kept):
                self.assertEqual(len(events.get(cid, [])), 1, (cid, events.get(cid)))
                status, n_exec, statuses = events[cid][0]
                self.assertIn(status, ("done", "interrupted"), (cid, events[cid]))
                self.assertEqual(n_exec, 1, (cid, events[cid]))
                self.assertIn(statuses, ("succeeded", "interrupted"), (cid, events[cid]))
            dup = db.execute("SELECT event_id, count(*) FROM executions WHERE event_id IS NOT NULL"
                             " GROUP BY event_id HAVING count(*) > 1").fetchall()
            self.assertEqual(dup, [])
        finally:
            db.close()
        print(f"kills survived: {KILLS}; acknowledged creations: {len(created)}, deletions: {len(deleted)}, "
              f"kept: {len(kept)}")
