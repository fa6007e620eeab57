"""The official @nangohq/node client (tests/integration/nango-client) against
a live evscriptd started by the harness: `npm ci` (skipped when its
node_modules is already installed) then `node --test`."""

import os
import subprocess

from harness import NANGO_CLIENT_DIR, SECRET, DaemonTest


NANGO = """
integrations:
    nango-client:
        provider: local-test
    nango-client-actions:
        provider: local-test
        actions:
            echo:
                description: returns its input
"""


class NangoClientTest(DaemonTest):
    def test_official_client(self):
        node = self.nango_client()
        d = self.daemon(NANGO, test_plugins=["echo"])
        e = dict(os.environ,
                 EVSCRIPT_URL=d.url,
                 EVSCRIPT_SECRET_KEY=SECRET,
                 EVSCRIPT_TEST_INTEGRATION="nango-client",
                 EVSCRIPT_TEST_ACTION_INTEGRATION="nango-client-actions",
                 EVSCRIPT_TEST_ACTION="echo")
        r = subprocess.run([node, "--test", NANGO_CLIENT_DIR], cwd=NANGO_CLIENT_DIR, env=e, capture_output=True,
                           text=True, timeout=300)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
