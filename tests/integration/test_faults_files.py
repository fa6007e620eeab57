"""Trust anchors checked like sshd's StrictModes (issue 15): a plugin_dir,
trusted_keys_dir or trusted key writable by anyone but the daemon's user or
root is refused with a sentence that names it, at start-up, on reload and by
--check-config; and a symbolic link in the plugin directory is followed only
when it stays inside it."""

import os
import shutil
import subprocess

from harness import DaemonTest, env, wait_for

NANGO = """
integrations:
    demo:
        provider: local-test
        on-events:
            post-connection-creation:
                - noop
"""


class StrictModes(DaemonTest):
    def private_keys(self, d):
        """A copy of the trusted keys in the daemon's directory, which the test may chmod."""
        keys = os.path.join(d.dir, "keys")
        shutil.copytree(env("EVS_TRUSTED_DIR"), keys)
        os.chmod(keys, 0o755)
        for f in os.listdir(keys):
            os.chmod(os.path.join(keys, f), 0o644)
        d.settings["trusted_keys_dir"] = "./keys"
        d.write_config()
        return keys

    def refused_at_start(self, d, words):
        d.start(wait=False)
        code = d.proc.wait(30)
        d.proc = None
        d.log.close()
        self.assertEqual(code, 1, d.logs())
        for w in words:
            self.assertIn(w, d.logs())
        check = subprocess.run([env("EVSCRIPTD"), "--config", d.config_path, "--check-config"],
                               cwd=d.dir, capture_output=True, text=True)
        self.assertEqual(check.returncode, 1, check.stdout + check.stderr)
        self.assertIn(words[0], check.stderr)

    def test_writable_plugin_dir(self):
        d = self.daemon(NANGO, start=False, test_plugins=["noop"])
        os.chmod(d.plugin_dir, 0o777)
        self.refused_at_start(d, ["plugins.d: refused: it is writable by others (mode 0777)"])

    def test_group_writable_keys_dir(self):
        d = self.daemon(NANGO, start=False, test_plugins=["noop"])
        keys = self.private_keys(d)
        os.chmod(keys, 0o775)
        self.refused_at_start(d, ["refused: it is writable by its group (mode 0775)"])

    def test_writable_key_file(self):
        d = self.daemon(NANGO, start=False, test_plugins=["noop"])
        keys = self.private_keys(d)
        pub = sorted(f for f in os.listdir(keys) if f.endswith(".pub"))[0]
        os.chmod(os.path.join(keys, pub), 0o666)
        self.refused_at_start(d, [pub + ": refused: it is writable by others (mode 0666)"])

    def test_key_owned_by_another_user(self):
        if os.geteuid() != 0:
            self.skipTest("needs root to give a file away")
        d = self.daemon(NANGO, start=False, test_plugins=["noop"])
        keys = self.private_keys(d)
        os.chown(keys, 65534, 65534)
        self.refused_at_start(d, ["refused: it is owned by uid 65534, neither root nor the daemon's user"])

    def test_writable_ancestor(self):
        d = self.daemon(NANGO, start=False)
        parent = os.path.join(d.dir, "open")
        os.makedirs(os.path.join(parent, "plugins"))
        os.chmod(parent, 0o777)   # no sticky bit: anyone may rename plugins/ away
        d.settings["plugin_dir"] = "./open/plugins"
        d.write_config()
        self.refused_at_start(d, ["refused: its directory " + os.path.realpath(parent) +
                                  " is writable by others (mode 0777)"])

    def test_reload_keeps_running_generation(self):
        d = self.daemon(NANGO, test_plugins=["noop"])
        os.chmod(d.plugin_dir, 0o757)
        status, _, doc = d.request("POST", "/reload")
        self.assertEqual(status, 422, doc)
        self.assertIn("refused: it is writable by others", doc["error"]["message"])
        status, _, doc = d.request("GET", "/plugins")
        self.assertEqual([p["name"] for p in doc["loaded"]], ["noop"])
        os.chmod(d.plugin_dir, 0o755)
        self.assertEqual(d.request("POST", "/reload")[0], 200)


class Symlinks(DaemonTest):
    def test_links_inside_followed_outside_refused(self):
        d = self.daemon(NANGO, start=False)
        src = env("EVS_TEST_PLUGINS_DIR")
        # noop: its files live in a subdirectory of plugin_dir, linked from the top
        inner = os.path.join(d.plugin_dir, "store")
        os.makedirs(inner)
        for f in ("noop.so", "noop.so.minisig"):
            shutil.copyfile(os.path.join(src, f), os.path.join(inner, f))
            os.symlink(os.path.join("store", f), os.path.join(d.plugin_dir, f))
        # echo: linked to the build tree, outside plugin_dir (absolute and relative links)
        os.symlink(os.path.join(src, "echo.so"), os.path.join(d.plugin_dir, "echo.so"))
        os.symlink(os.path.relpath(os.path.join(src, "echo.so.minisig"), d.plugin_dir),
                   os.path.join(d.plugin_dir, "echo.so.minisig"))
        d.start()
        status, _, doc = d.request("GET", "/plugins")
        self.assertEqual(status, 200)
        self.assertEqual([p["name"] for p in doc["loaded"]], ["noop"])
        refused = {r["name"]: r["reason"] for r in doc["refused"]}
        self.assertIn("a symbolic link that leads out of the plugin directory", refused["echo"])
