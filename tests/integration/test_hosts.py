"""Several evscriptd hosts on one PostgreSQL database (issue 11).

PostgreSQL only (registered for the pg label alone): three hosts share the
work exactly once while one of them is killed with SIGKILL; a database
restart under load loses nothing acknowledged; hosts starting together
migrate once; a newer schema, another encryption key and a password in the
store URL are handled as docs/operations.md says.
"""

import base64
import os
import shutil
import signal
import tempfile
import threading
import time
import unittest

import pg_server
from harness import STORE, DaemonTest, new_pg_database, pg_dir, wait_for

NANGO = """
integrations:
    demo:
        provider: local-test
        on-events:
            post-connection-creation:
                - caller
"""

TIMEOUT_S = 3        # host_timeout_s of these hosts
CREATIONS = 300      # connections created through the three hosts at once
KILL_AFTER = 100     # acknowledged creations before the third host is killed


@unittest.skipUnless(STORE == "pg", "several hosts share a PostgreSQL store only")
class HostsTest(DaemonTest):
    def setUp(self):
        super().setUp()
        # the script's one call to the provider takes a while, so that
        # executions are running when a host is killed; the provider
        # records each call: a script that ran twice would call twice
        self.provider.route("GET", "/slow", {"status": 200, "body": {"ok": True}, "delay": 0.1})

    def database(self):
        url, name = new_pg_database()
        self.addCleanup(pg_server.drop_database, pg_dir(), name)
        return url

    def host(self, url, host_id, start=True, **settings):
        s = {"host_id": host_id, "host_timeout_s": TIMEOUT_S,
             "environment": {"CALLER_PATH": "/slow"}}
        s.update(settings)
        return self.daemon(NANGO, start=start, settings=s, test_plugins=["caller"], store=url)

    def create(self, d, cid, headers=None):
        body = {"provider_config_key": "demo", "connection_id": cid,
                "credentials": {"type": "API_KEY", "apiKey": cid},
                "connection_config": {"port": str(self.provider.port)}}
        return d.request("POST", "/connections", body, headers=headers)

    def all_executions(self, d):
        out, cursor = [], None
        while True:
            q = "/executions?limit=200&event=post-connection-creation" + (f"&cursor={cursor}" if cursor else "")
            status, _, doc = d.request("GET", q)
            self.assertEqual(status, 200, doc)
            out += doc["executions"]
            cursor = doc.get("next_cursor")
            if not cursor:
                return out

    def calls_by_connection(self):
        counts = {}
        for r in self.provider.received("GET", "/slow"):
            key = r["headers"].get("x-api-key")
            counts[key] = counts.get(key, 0) + 1
        return counts

    def test_three_hosts_one_killed(self):
        url = self.database()
        hosts = [self.host(url, f"host-{i}", start=False) for i in range(3)]
        for d in hosts:  # at once: the migrations serialize on their lock
            d.start(wait=False)
        for d in hosts:
            d.wait_ready()
        acked, lock = set(), threading.Lock()

        def client(d, ids):
            for cid in ids:
                try:
                    status, _, _ = self.create(d, cid)
                except OSError:
                    continue  # the host was killed: not acknowledged
                if status == 201:
                    with lock:
                        acked.add(cid)

        ids = [f"c{i:04d}" for i in range(CREATIONS)]
        threads = [threading.Thread(target=client, args=(hosts[i % 3], ids[i::6])) for i in range(6)]
        for t in threads:
            t.start()
        wait_for(lambda: len(acked) >= KILL_AFTER, timeout=120, what=f"{KILL_AFTER} creations")
        dead = hosts[2]
        dead.kill9()
        killed_at = time.monotonic()
        for t in threads:
            t.join()
        survivors = hosts[:2]

        # Every acknowledged creation ends with exactly one execution, and
        # none is left running: the dead host's are settled once its
        # heartbeat is older than host_timeout_s.
        def settled():
            ex = self.all_executions(survivors[0])
            if any(e["status"] == "running" for e in ex):
                return None
            done = {e["connection_id"] for e in ex}
            return ex if acked <= done else None
        ex = wait_for(settled, timeout=TIMEOUT_S + 60, interval=0.2,
                      what="every acknowledged creation's execution to end")
        settled_after = time.monotonic() - killed_at

        by_connection = {}
        for e in ex:
            by_connection.setdefault(e["connection_id"], []).append(e)
        for cid, runs in by_connection.items():
            self.assertEqual(len(runs), 1, f"{cid} has {len(runs)} executions: {runs}")
        for cid in acked:
            self.assertIn(cid, by_connection, f"acknowledged {cid} has no execution")
        calls = self.calls_by_connection()
        for cid, (e,) in by_connection.items():
            self.assertIn(e["status"], ("succeeded", "interrupted"), e)
            self.assertLessEqual(calls.get(cid, 0), 1, f"{cid}'s script ran more than once")
            if e["status"] == "succeeded":
                self.assertEqual(calls.get(cid, 0), 1, e)
            else:
                # only the dead host leaves interrupted executions, with the reason
                self.assertEqual(e["host_id"], "host-2", e)
                self.assertIn("host host-2 stopped", e["error"])
        ran_on = {e["host_id"] for e in ex}
        self.assertGreater(len(ran_on), 1, ran_on)
        self.assertLessEqual(ran_on, {"host-0", "host-1", "host-2"})

        # every host lists every connection
        for d in survivors:
            status, _, doc = d.request("GET", "/connections")
            self.assertEqual(status, 200, doc)
            listed = {c["connection_id"] for c in doc["connections"]}
            self.assertLessEqual(acked, listed)
        if any(e["status"] == "interrupted" for e in ex):  # the survivor that settled it says so
            self.assertIn("host host-2: no heartbeat", survivors[0].logs() + survivors[1].logs())
        print(f"\n{len(acked)} acknowledged creations of {CREATIONS}; executions per host: "
              f"{ {h: sum(e['host_id'] == h for e in ex) for h in sorted(ran_on)} }; "
              f"{sum(e['status'] == 'interrupted' for e in ex)} interrupted; "
              f"settled {settled_after:.1f} s after the kill (host_timeout_s {TIMEOUT_S})")

    def test_database_restart_under_load(self):
        # a server of its own: the shared one serves the other tests
        sdir = tempfile.mkdtemp(prefix="evs-pg-restart-")
        self.addCleanup(shutil.rmtree, sdir, True)
        pg_server.start(sdir)
        self.addCleanup(pg_server.stop, sdir)
        url = pg_server.create_database(sdir, "restart")
        hosts = [self.host(url, f"r{i}") for i in range(2)]
        acked, failed, stop = set(), [0], threading.Event()
        lock = threading.Lock()

        def client(d, prefix):
            i = 0
            while not stop.is_set():
                cid = f"{prefix}-{i}"
                try:
                    status, _, _ = self.create(d, cid, headers={"Idempotency-Key": cid})
                except OSError:
                    status = 0
                with lock:
                    if status == 201:
                        acked.add(cid)
                        i += 1
                    else:
                        failed[0] += 1  # retried with the same key
                        time.sleep(0.05)

        threads = [threading.Thread(target=client, args=(hosts[i % 2], f"r{i}")) for i in range(4)]
        for t in threads:
            t.start()
        wait_for(lambda: len(acked) >= 40, timeout=60, what="creations before the restart")
        pg_server.restart(sdir)
        before = len(acked)
        wait_for(lambda: len(acked) >= before + 40, timeout=60, what="creations after the restart")
        stop.set()
        for t in threads:
            t.join()
        for d in hosts:
            status, _, doc = d.request("GET", "/connections")
            self.assertEqual(status, 200, doc)
            self.assertLessEqual(acked, {c["connection_id"] for c in doc["connections"]})

        def all_ran():
            ex = self.all_executions(hosts[0])
            if any(e["status"] == "running" for e in ex):
                return None
            return ex if acked <= {e["connection_id"] for e in ex} else None
        ex = wait_for(all_ran, timeout=60, interval=0.2, what="every acknowledged creation to run")
        seen = {}
        for e in ex:
            seen[e["connection_id"]] = seen.get(e["connection_id"], 0) + 1
        self.assertEqual([c for c, n in seen.items() if n > 1], [])
        print(f"\n{len(acked)} acknowledged creations, {failed[0]} refused while the database "
              f"restarted (retried with their Idempotency-Key)")

    def test_ledger_and_idempotency_shared(self):
        from test_reload import build_plugin  # compiles and signs a plugin at a version
        build = tempfile.mkdtemp(prefix="evs-hosts-build-")
        self.addCleanup(shutil.rmtree, build, True)
        v2, v1 = build_plugin(build, "ver", "2.0.0"), build_plugin(build, "ver", "1.0.0")
        url = self.database()
        nango = NANGO + "    versioned:\n        provider: local-test\n        on-events:\n" \
                        "            post-connection-creation:\n                - ver\n"
        a = self.daemon(nango, start=False, settings={"host_id": "a"}, test_plugins=["caller"], store=url)
        a.deploy(v2)
        a.start()
        # another host with an older build of the plugin: the ledger it shares says 2.0.0
        b = self.daemon(nango, start=False, settings={"host_id": "b"}, test_plugins=["caller"], store=url)
        b.deploy(v1)
        b.start()
        status, _, plugins = b.request("GET", "/plugins")
        self.assertEqual(status, 200, plugins)
        self.assertEqual([(x["name"], x["reason_code"]) for x in plugins["refused"]], [("ver", "downgrade")])
        self.assertNotIn("ver", {x["name"] for x in plugins["loaded"]})

        # an Idempotency-Key recorded through one host is replayed by the other
        s1, _, b1 = self.create(a, "idem", headers={"Idempotency-Key": "shared-key"})
        s2, h2, b2 = self.create(b, "idem", headers={"Idempotency-Key": "shared-key"})
        self.assertEqual((s1, s2), (201, 201), (b1, b2))
        self.assertEqual(b1, b2)
        self.assertEqual(h2.get("Idempotent-Replayed"), "true")
        s3, _, b3 = self.create(b, "idem-other", headers={"Idempotency-Key": "shared-key"})
        self.assertEqual((s3, b3["error"]["code"]), (422, "idempotency_key_reused"))
        ex = wait_for(lambda: [e for e in self.all_executions(a) if e["connection_id"] == "idem"
                               and e["status"] != "running"] or None, timeout=30, what="the one execution")
        self.assertEqual(len(ex), 1)

    def test_schema_newer_refused(self):
        url = self.database()
        d = self.host(url, "s0")
        d.stop()
        pg_server.psql(pg_dir(), "UPDATE evscript_schema SET version = 99", db=url.rsplit("/", 1)[1])
        d.start(wait=False)
        self.assertNotEqual(d.proc.wait(60), 0)
        d.stop()
        self.assertIn("schema version 99 is newer than this evscript supports", d.logs())

    def test_other_encryption_key_refused(self):
        url = self.database()
        key1 = base64.b64encode(os.urandom(32)).decode()
        key2 = base64.b64encode(os.urandom(32)).decode()
        a = self.host(url, "k0", start=False).start(extra_env={"EVSCRIPT_ENCRYPTION_KEY": key1})
        self.assertEqual(self.create(a, "enc")[0], 201)
        b = self.host(url, "k1", start=False)
        b.start(extra_env={"EVSCRIPT_ENCRYPTION_KEY": key2}, wait=False)
        self.assertNotEqual(b.proc.wait(60), 0)
        b.stop()
        self.assertIn("every host must share it", b.logs())
        # a host with the same key reads what the first one sealed
        c = self.host(url, "k2", start=False).start(extra_env={"EVSCRIPT_ENCRYPTION_KEY": key1})
        status, _, doc = c.request("GET", "/connections/enc?provider_config_key=demo")
        self.assertEqual(status, 200, doc)
        self.assertEqual(doc["credentials"]["apiKey"], "enc")

    def test_password_masked(self):
        url = self.database()  # trust authentication: the password is not checked
        with_password = url.replace("://evs@", "://evs:s3cr3t-pw@")
        d = self.host(with_password, "p0")
        self.assertEqual(self.create(d, "pw")[0], 201)
        d.stop()
        # an unreachable server: the error says so, without the password
        bad = self.host(with_password.rsplit(":", 1)[0] + ":1/nodb", "p1", start=False)
        bad.start(wait=False)
        self.assertNotEqual(bad.proc.wait(60), 0)
        bad.stop()
        for log in (d.logs(), bad.logs()):
            self.assertNotIn("s3cr3t-pw", log)
            self.assertIn("evs:***@127.0.0.1", log)
        self.assertIn("could not connect", bad.logs())


if __name__ == "__main__":
    unittest.main()
