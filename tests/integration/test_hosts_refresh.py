"""Token refresh across hosts (issues 11 and 12): two evscriptd hosts on one
PostgreSQL database use one expiring OAuth2 connection at once, and the
token endpoint sees one refresh, not one per host.

PostgreSQL only (registered for the pg label alone). Within one host the
refresh is single-flight through an in-process lock (test_credentials.py);
across hosts the PostgreSQL store adds an advisory lock on the connection's
key (runtime/store/store_pg_lock.c), under which the second host re-reads
the tokens the first one stored.
"""

import base64
import os
import threading
import unittest

import pg_server
from harness import STORE, DaemonTest, new_pg_database, pg_dir
from test_credentials import CLIENT_SECRET, NANGO, PAST, PROVIDERS

USERS = 12  # concurrent calls, spread over the two hosts


@unittest.skipUnless(STORE == "pg", "hosts share a PostgreSQL store only")
class HostsRefreshTest(DaemonTest):
    def host(self, url, host_id, key):
        d = self.daemon(NANGO, start=False, store=url, test_plugins=["caller"],
                        settings={"host_id": host_id})
        path = os.path.join(d.dir, "providers.yaml")
        with open(path, "w") as f:
            f.write(PROVIDERS)
        d.settings.update({"providers": path,
                           "oauth_clients": {"oauth-it": {"client_id": "cid-1",
                                                          "client_secret_env": "OAUTH_IT_SECRET"}}})
        d.write_config()
        d.start(extra_env={"OAUTH_IT_SECRET": CLIENT_SECRET, "EVSCRIPT_ENCRYPTION_KEY": key})
        return d

    def test_two_hosts_share_one_refresh(self):
        url, name = new_pg_database()
        self.addCleanup(pg_server.drop_database, pg_dir(), name)
        key = base64.b64encode(os.urandom(32)).decode()
        hosts = [self.host(url, "r0", key), self.host(url, "r1", key)]
        tokens = iter(["shared-1", "shared-2", "shared-3", "shared-4"])
        # slow enough that every caller arrives while the first refresh runs
        self.provider.route("POST", "/oauth/token", lambda r: {
            "status": 200, "delay": 0.5,
            "body": {"access_token": next(tokens), "refresh_token": "r2", "expires_in": 3600,
                     "token_type": "bearer"}})
        self.provider.route("GET", "/me", lambda r: {"status": 200, "body": {"seen": r["headers"]}})
        status, _, doc = hosts[0].create_connection(
            "oauth-it", "c1", {"type": "OAUTH2", "access_token": "old-token", "refresh_token": "r1",
                               "expires_at": PAST},
            connection_config={"port": self.provider.port})
        self.assertEqual(status, 201, doc)

        results, lock = [], threading.Lock()
        barrier = threading.Barrier(USERS)

        def use(i):
            d = hosts[i % 2]
            barrier.wait()
            if i % 4 < 2:
                status, _, doc = d.request("GET", "/proxy/me", headers={
                    "Connection-Id": "c1", "Provider-Config-Key": "oauth-it"})
                seen = doc["seen"]["authorization"] if status == 200 else str(doc)
            else:
                status, _, doc = d.request("GET", "/connections/c1?provider_config_key=oauth-it")
                seen = "Bearer " + doc["credentials"]["access_token"] if status == 200 else str(doc)
            with lock:
                results.append((d.settings["host_id"], seen))

        threads = [threading.Thread(target=use, args=(i,)) for i in range(USERS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

        grants = self.provider.received("POST", "/oauth/token")
        self.assertEqual(len(grants), 1, grants)
        self.assertEqual(sorted(results), sorted([("r0", "Bearer shared-1")] * (USERS // 2) +
                                                 [("r1", "Bearer shared-1")] * (USERS // 2)))
        # one host refreshed, the other only read what it stored
        refreshed = [d.settings["host_id"] for d in hosts
                     if "oauth-it/c1: access token refreshed" in d.logs()]
        self.assertEqual(len(refreshed), 1, refreshed)
        # both hosts now read the new token from the store
        for d in hosts:
            status, _, doc = d.request("GET", "/connections/c1?provider_config_key=oauth-it")
            self.assertEqual(status, 200, doc)
            self.assertEqual(doc["credentials"]["access_token"], "shared-1")


if __name__ == "__main__":
    unittest.main()
