"""The official @nangohq/node client (tests/integration/nango-client) against
a live evscriptd started by the harness: `npm ci` (skipped when its
node_modules is already installed) then `node --test`."""

import os
import shutil
import subprocess

from harness import SECRET, DaemonTest

HERE = os.path.dirname(os.path.abspath(__file__))
CLIENT_DIR = os.path.join(HERE, "nango-client")

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
        node, npm = shutil.which("node"), shutil.which("npm")
        self.assertIsNotNone(node, "node is required for this test")
        if not os.path.isdir(os.path.join(CLIENT_DIR, "node_modules", "@nangohq", "node")):
            self.assertIsNotNone(npm, "npm is required to install the client")
            subprocess.run([npm, "ci", "--prefix", CLIENT_DIR], check=True, timeout=600)
        d = self.daemon(NANGO, test_plugins=["echo"])
        e = dict(os.environ,
                 EVSCRIPT_URL=d.url,
                 EVSCRIPT_SECRET_KEY=SECRET,
                 EVSCRIPT_TEST_INTEGRATION="nango-client",
                 EVSCRIPT_TEST_ACTION_INTEGRATION="nango-client-actions",
                 EVSCRIPT_TEST_ACTION="echo")
        r = subprocess.run([node, "--test", CLIENT_DIR], cwd=CLIENT_DIR, env=e, capture_output=True,
                           text=True, timeout=300)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
