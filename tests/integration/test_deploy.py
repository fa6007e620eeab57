"""`evscript deploy` and `evscript sign` without -t (issue 14): the trusted
comment comes from the plugin's own info, both files are copied in
atomically, the daemon reloads, and the outcome (in service, or refused with
its reason) is printed from GET /plugins, with a non-zero exit on refusal."""

import os
import subprocess
import unittest

from harness import SECRET, BuildDirTest, cc_plugin, env, sign_plugin, write_file
from test_check_config import PLUGIN_C

NANGO = """
integrations:
    demo:
        provider: local-test
        on-events:
            post-connection-creation:
                - ver
"""


def compile_plugin(outdir, name, version, build="a", *flags):
    """NAME.so, unsigned, in its own directory."""
    d = os.path.join(outdir, f"{name}-{version}-{build}{''.join(flags)}")
    os.makedirs(d, exist_ok=True)
    src = write_file(os.path.join(d, "plugin.c"), PLUGIN_C)
    return cc_plugin(src, os.path.join(d, name + ".so"), f'-DNAME="{name}"', f'-DVERSION="{version}"',
                     f'-DBUILD="{build}"', *["-D" + f for f in flags])


def cli(*args, secret=SECRET):
    e = dict(os.environ)
    e.pop("EVSCRIPT_SECRET_KEY", None)
    if secret:
        e["EVSCRIPT_SECRET_KEY"] = secret
    return subprocess.run([env("EVSCRIPT_CLI"), *args], capture_output=True, text=True, env=e, timeout=120)


class DeployTest(BuildDirTest):
    tmp_prefix = "evs-deploy-"

    def test_deploy_sign_copy_reload_report(self):
        d = self.daemon(NANGO)
        v1 = compile_plugin(self.tmp, "ver", "1.0.0")
        key = env("EVS_SECRET_KEYFILE")
        r = cli("deploy", v1, "--sign", key, "--plugin-dir", d.plugin_dir, "--reload", d.url)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("signed ", r.stdout)
        self.assertIn("plugin:ver version:1.0.0 abi:1", r.stdout)
        self.assertIn("ver 1.0.0: in service (since generation 2)", r.stdout)
        self.assertEqual(sorted(os.listdir(d.plugin_dir)), ["ver.so", "ver.so.minisig"])
        d.create_connection("demo", "c1")
        ex = d.wait_executions(1)[0]
        self.assertEqual(ex["status"], "succeeded", ex)

        # a rebuild under the same version: refused, and the output says why
        # and what to do; the exit status says it failed
        again = compile_plugin(self.tmp, "ver", "1.0.0", "b")
        r = cli("deploy", again, "--sign", key, "--plugin-dir", d.plugin_dir, "--reload", d.url)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("ver 1.0.0: refused (downgrade): ", r.stdout)
        self.assertIn("bump the version", r.stdout)

        # the next version, signed beforehand by `evscript sign` without -t
        v2 = compile_plugin(self.tmp, "ver", "2.0.0")
        r = cli("sign", "-s", key, "-m", v2)
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(v2 + ".minisig") as f:
            self.assertEqual(f.read().splitlines()[2], "trusted comment: plugin:ver version:2.0.0 abi:1")
        r = cli("deploy", v2, "--plugin-dir", d.plugin_dir, "--reload", d.url)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("ver 2.0.0: in service (since generation 4)", r.stdout)

    def test_refusals_before_anything_is_copied(self):
        d = self.daemon(NANGO, start=False)
        key = env("EVS_SECRET_KEYFILE")
        # no plugin info: sign and deploy both refuse, nothing is written
        noinfo = compile_plugin(self.tmp, "ver", "1.0.0", "n", "NO_INFO")
        r = cli("sign", "-s", key, "-m", noinfo)
        self.assertEqual(r.returncode, 1)
        self.assertIn("exports no evs_plugin_info", r.stderr)
        self.assertIn("not signed", r.stderr)
        self.assertFalse(os.path.exists(noinfo + ".minisig"))
        r = cli("deploy", noinfo, "--sign", key, "--plugin-dir", d.plugin_dir)
        self.assertEqual(r.returncode, 1)
        self.assertEqual(os.listdir(d.plugin_dir), [])
        # a signature for another version
        v1 = compile_plugin(self.tmp, "ver", "1.0.0", "s")
        sign_plugin(v1, "plugin:ver version:0.1.0 abi:1")
        r = cli("deploy", v1, "--plugin-dir", d.plugin_dir)
        self.assertEqual(r.returncode, 1)
        self.assertIn("re-sign it", r.stderr)
        self.assertEqual(os.listdir(d.plugin_dir), [])
        # a wrong secret: the reload is refused and said so
        d.start()
        r = cli("deploy", v1, "--sign", key, "--plugin-dir", d.plugin_dir, "--reload", d.url, secret="wrong")
        self.assertEqual(r.returncode, 1)
        self.assertIn("HTTP 401", r.stderr)


if __name__ == "__main__":
    unittest.main()
