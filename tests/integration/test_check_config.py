"""`evscriptd --check-config` predicts the reload (issue 14): the same
verification, the same plugin-info checks in a throwaway zygote, the same
downgrade ledger, and every script name nango.yaml lists held against the
deployed plugins with "did you mean". Also `dev_accept_rebuilds` and the
downgrade refusal's hint.

Plugins are compiled and signed at test time; each variant is refused by a
different step, and the test compares what the check says with what the
reload then does (POST /reload and GET /plugins)."""

import os
import re
import subprocess
import unittest

from harness import STORE, BuildDirTest, cc_plugin, env, sign_plugin, write_file

PLUGIN_C = r"""
#include <evscript/sdk.h>

#if defined(WRONG_ABI)
EVS_EXPORT const struct evs_plugin_info evs_plugin_info = {
	sizeof(struct evs_plugin_info), EVS_ABI_MAJOR + 1, 0, NAME, VERSION};
#elif !defined(NO_INFO)
EVS_PLUGIN(NAME, VERSION);
#endif

int on_event(const struct evs_host *host, struct evs_ctx *ctx, const struct evs_event *event)
{
	host->log(ctx, EVS_LOG_INFO, "%s %s build " BUILD " ran event %lld", NAME, VERSION,
		  (long long)event->event_id);
	return 0;
}
"""

NANGO = """
integrations:
    demo:
        provider: local-test
        on-events:
            post-connection-creation:
                - ver
                - helper
"""

CHECK_LINE = re.compile(r"^plugin (\S+): refused \((\w+)\): ", re.M)


def build(outdir, name, version, build="a", **flags):
    """Compiles NAME.so (VERSION, build tag changing its bytes) and signs it
    with the trusted comment "plugin:NAME version:VERSION abi:1"."""
    d = os.path.join(outdir, f"{name}-{version}-{build}-{'-'.join(sorted(flags))}")
    os.makedirs(d, exist_ok=True)
    src = write_file(os.path.join(d, "plugin.c"), PLUGIN_C)
    so = cc_plugin(src, os.path.join(d, name + ".so"), f'-DNAME="{name}"', f'-DVERSION="{version}"',
                   f'-DBUILD="{build}"', *["-D" + flag for flag, on in flags.items() if on])
    return sign_plugin(so, f"plugin:{name} version:{version} abi:1")


class CheckConfigPredictsReload(BuildDirTest):
    tmp_prefix = "evs-check-"

    def check(self, d):
        e = dict(os.environ)
        e.pop("EVSCRIPT_SECRET_KEY", None)
        return subprocess.run([env("EVSCRIPTD"), "--config", d.config_path, "--check-config"],
                              capture_output=True, text=True, env=e, timeout=120)

    def reload(self, d):
        status, _, doc = d.request("POST", "/reload")
        _, _, plugins = d.request("GET", "/plugins")
        return status, doc, plugins

    def test_refusals_are_the_reloads(self):
        d = self.daemon(NANGO, start=False)
        d.deploy(build(self.tmp, "ver", "1.0.0"))
        d.deploy(build(self.tmp, "helper", "1.0.0"))
        r = self.check(d)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("plugin ver 1.0.0: signature ok", r.stdout)
        self.assertIn(", 2 plugins loaded, 0 refused, 0 listed scripts missing", r.stdout)
        d.start()

        # Each variant is signed correctly; what is wrong shows only when the
        # plugin is opened (its info) or against the ledger (its bytes).
        variants = [
            ("ver", build(self.tmp, "ver", "2.0.0", WRONG_ABI=True), "abi_mismatch"),
            ("ver", build(self.tmp, "ver", "2.0.0", NO_INFO=True), "no_entry_point"),
            ("ver", build(self.tmp, "ver", "1.0.0", build="b"), "downgrade"),
        ]
        for name, so, code in variants:
            if code == "downgrade" and STORE == "pg":
                # --check-config does not open a shared store (it would join it
                # as a host): it says so, and cannot see the ledger's verdict
                r = self.check(d)
                self.assertIn("not opened by --check-config", r.stdout)
                continue
            with self.subTest(code=code):
                d.deploy(so)
                r = self.check(d)
                self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
                predicted = dict(CHECK_LINE.findall(r.stdout))
                self.assertEqual(predicted, {name: code}, r.stdout)
                status, doc, plugins = self.reload(d)
                self.assertEqual(status, 422, doc)
                refused = {p["name"]: p["reason_code"] for p in plugins["refused"]}
                self.assertEqual(refused, predicted)
                reason = [p["reason"] for p in plugins["refused"]][0]
                self.assertIn(reason, r.stdout)   # word for word
        # the same-version refusal says what to do
        if STORE != "pg":
            self.assertIn("bump the version", reason)

        # back to the accepted bytes: both agree it is fine again
        d.deploy(build(self.tmp, "ver", "1.0.0"))
        r = self.check(d)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        status, doc, _ = self.reload(d)
        self.assertEqual(status, 200, doc)

    def test_misspelt_script_did_you_mean(self):
        nango = NANGO.replace("- helper", "- helpr")
        d = self.daemon(nango, start=False)
        d.deploy(build(self.tmp, "ver", "1.0.0"))
        d.deploy(build(self.tmp, "helper", "1.0.0"))
        r = self.check(d)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertRegex(r.stdout, r"nango\.yaml:3:5: integrations\.demo\.on-events\.post-connection-creation "
                                   r"lists 'helpr', which is not a deployed plugin \(no helpr\.so in .*\); "
                                   r"did you mean 'helper'\?")
        self.assertIn("1 listed scripts missing", r.stdout)
        # the daemon starts (the other scripts work) and says the same thing
        d.start()
        self.assertIn("lists 'helpr', which is not a deployed plugin", d.logs())
        self.assertIn("did you mean 'helper'?", d.logs())
        status, doc, plugins = self.reload(d)
        self.assertEqual(status, 200, doc)
        self.assertEqual(len(doc["warnings"]), 1, doc)
        self.assertIn("did you mean 'helper'?", doc["warnings"][0])
        self.assertEqual(plugins["warnings"], doc["warnings"])

    def test_action_listed_as_event_script(self):
        nango = NANGO.replace("- helper", "- echo")
        d = self.daemon(nango, start=False, test_plugins=["echo"])
        d.deploy(build(self.tmp, "ver", "1.0.0"))
        r = self.check(d)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("lists 'echo', which is an action (run_action), not an event script", r.stdout)


class DevAcceptRebuilds(BuildDirTest):
    tmp_prefix = "evs-rebuilds-"

    def test_rebuild_under_the_same_version(self):
        d = self.daemon(NANGO.replace("                - helper\n", ""), start=False,
                        settings={"dev_accept_rebuilds": True})
        d.deploy(build(self.tmp, "ver", "1.0.0", build="a"))
        d.start()
        d.deploy(build(self.tmp, "ver", "1.0.0", build="b"))
        status, _, doc = d.request("POST", "/reload")
        self.assertEqual(status, 200, doc)
        self.assertEqual(doc["refused"], [])
        d.create_connection("demo", "c1")
        ex = d.wait_executions(1)
        logs = d.execution(ex[0]["id"])["logs"]
        self.assertTrue(any("build b ran" in line["message"] for line in logs), logs)
        # a lower version is still refused
        d.deploy(build(self.tmp, "ver", "0.9.0"))
        status, _, doc = d.request("POST", "/reload")
        self.assertEqual(status, 422, doc)
        self.assertEqual(doc["error"]["payload"]["refused"][0]["reason_code"], "downgrade")

    def test_refused_with_a_non_loopback_listen(self):
        d = self.daemon("integrations: {}\n", start=False)
        with open(d.config_path, "w") as f:
            f.write(f"listen: 0.0.0.0:{d.port}\nsecret_key: s3cret-s3cret\ndev_accept_rebuilds: true\n")
        p = subprocess.run([env("EVSCRIPTD"), "--config", d.config_path, "--check-config"],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 1)
        self.assertRegex(p.stderr, r"evscript\.yaml:3:1: dev_accept_rebuilds: true needs a loopback listen "
                                   r"address .*found '0\.0\.0\.0:\d+'")


if __name__ == "__main__":
    unittest.main()
