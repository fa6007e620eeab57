"""A C++ plugin (issue 14): tests/plugins/src/cxx-hello.cpp is built by CMake
with evscript_add_plugin(), signed like any plugin, and must be loaded and
run by the real daemon: its info and entry point have C linkage, and it
exports nothing else (the sdk_exports_testplugin_cxx-hello test checks the
symbol list)."""

import os
import unittest

from harness import DaemonTest, env, wait_for

NANGO = """
integrations:
    demo:
        provider: local-test
        on-events:
            post-connection-creation:
                - cxx-hello
"""


class CxxPluginTest(DaemonTest):
    def test_cxx_plugin_runs(self):
        so = os.path.join(env("EVS_TEST_PLUGINS_DIR"), "cxx-hello.so")
        self.assertTrue(os.path.exists(so), "the build made no C++ plugin (is a C++ compiler installed?)")
        d = self.daemon(NANGO, test_plugins=["cxx-hello"])
        _, _, plugins = d.request("GET", "/plugins")
        self.assertEqual([p["name"] for p in plugins["loaded"]], ["cxx-hello"], plugins)
        self.assertEqual(plugins["refused"], [])
        status, _, doc = d.create_connection("demo", "conn-cxx")
        self.assertIn(status, (200, 201), doc)
        ex = d.wait_executions(1)[0]
        self.assertEqual(ex["status"], "succeeded", ex)
        lines = [x["message"] for x in d.execution(ex["id"])["logs"]]
        self.assertIn("c++ post-connection-creation demo conn-cxx", lines)
        status, _, conn = d.request("GET", "/connections/conn-cxx?provider_config_key=demo")
        self.assertEqual(status, 200, conn)
        self.assertEqual(conn["metadata"], {"language": "c++"})


if __name__ == "__main__":
    unittest.main()
