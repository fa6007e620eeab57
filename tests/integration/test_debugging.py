"""docs/plugins.md "Debugging a plugin", followed step by step (issue 14):
a plugin built with -g crashes in a static function under the daemon; the
execution's error carries the signal, the fault address, plugin-relative
frames named from the plugin's own symbol table, and its build id, which
matches `readelf -n`; addr2line and gdb's add-symbol-file turn the offset
into the source line; `evscript run` under gdb stops at that line."""

import json
import os
import re
import subprocess
import unittest

from harness import DaemonTest, cc_plugin, env, sign_plugin, write_file

BOOM_C = """#include <evscript/sdk.h>

EVS_PLUGIN("boom", "1.0.0");

static __attribute__((noinline)) void boom(volatile int *p)
{
	*p = 1; /* line 7: the crash */
}

int on_event(const struct evs_host *host, struct evs_ctx *ctx, const struct evs_event *event)
{
	host->log(ctx, EVS_LOG_INFO, "about to crash on %s", event->name);
	boom((volatile int *)0);
	return 0;
}
"""

NANGO = """
integrations:
    demo:
        provider: local-test
        on-events:
            post-connection-creation: [boom]
"""


class DebuggingTest(DaemonTest):
    def setUp(self):
        super().setUp()
        self.tmp = self.tempdir("evs-debug-")
        src = write_file(os.path.join(self.tmp, "boom.c"), BOOM_C)
        self.so = cc_plugin(src, os.path.join(self.tmp, "boom.so"), "-g", "-O1", "-fvisibility=hidden",
                            "-Wl,--build-id", cwd=self.tmp)
        sign_plugin(self.so)

    def sh(self, *cmd):
        return subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=self.tmp)

    def test_follow_the_debugging_section(self):
        # 1. the crash report
        d = self.daemon(NANGO, start=False)
        d.deploy(self.so)
        d.start()
        d.create_connection("demo", "c1", connection_config={"port": str(self.provider.port)})
        ex = d.wait_executions(1)[0]
        self.assertEqual(ex["status"], "crashed", ex)
        error = d.execution(ex["id"])["error"]
        lines = error.split("\n")
        self.assertEqual(lines[0], "crashed: SIGSEGV (Segmentation fault)")
        self.assertEqual(lines[1], "fault address 0x0 (address not mapped to object)")
        m0 = re.fullmatch(r"#0 boom\.so\+0x([0-9a-f]+) boom\+0x[0-9a-f]+", lines[2])
        self.assertTrue(m0, error)
        self.assertRegex(lines[3], r"^#1 boom\.so\+0x[0-9a-f]+ on_event\+0x[0-9a-f]+$")
        offset = "0x" + m0.group(1)
        report_id = re.search(r"^boom\.so build id ([0-9a-f]+)$", error, re.M).group(1)

        # 2. the same build?  readelf -n
        notes = self.sh("readelf", "-n", self.so).stdout
        self.assertIn(f"Build ID: {report_id}", notes)

        # 3. the line: addr2line, and gdb's add-symbol-file -o 0
        a2l = self.sh("addr2line", "-f", "-e", self.so, offset).stdout.split("\n")
        self.assertEqual(a2l[0], "boom")
        self.assertTrue(a2l[1].endswith("boom.c:7"), a2l)
        gdb = self.sh("gdb", "-batch", "-nx", "-ex", f"add-symbol-file {self.so} -o 0",
                      "-ex", f"info line *{offset}")
        self.assertRegex(gdb.stdout, r'Line 7 of "[^"]*boom\.c"', gdb.stdout + gdb.stderr)

        # 4. evscript run alone: the crash is said with its frames, and it dies of the signal
        conn = os.path.join(self.tmp, "conn.json")
        with open(conn, "w") as f:
            json.dump({"connection_id": "c1", "provider_config_key": "demo", "provider": "local-test",
                       "connection_config": {"port": str(self.provider.port)}}, f)
        alone = self.sh(env("EVSCRIPT_CLI"), "run", self.so, "--event", "post-connection-creation",
                        "--connection", conn, "--providers", env("EVS_PROVIDERS"))
        self.assertEqual(alone.returncode, -11, alone.stdout + alone.stderr)
        self.assertIn("evscript run: the plugin crashed: Segmentation fault", alone.stderr)
        self.assertRegex(alone.stderr, r"boom\.so\(on_event\+0x[0-9a-f]+\)")

        # 5. evscript run under gdb stops at that line
        run = self.sh("gdb", "-batch", "-nx", "-ex", "run", "-ex", "bt", "--args", env("EVSCRIPT_CLI"), "run",
                      self.so, "--event", "post-connection-creation", "--connection", conn,
                      "--providers", env("EVS_PROVIDERS"))
        out = run.stdout + run.stderr
        self.assertIn("SIGSEGV", out)
        self.assertRegex(out, r"boom \(p=(p@entry=)?0x0\) at [^\n]*boom\.c:7")
        self.assertRegex(out, r"#1 [^\n]*on_event \([^\n]*\) at [^\n]*boom\.c:13")


if __name__ == "__main__":
    unittest.main()
