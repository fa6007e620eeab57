"""What `cmake --install` and the .deb install (issue 14) work as installed:
the binaries, the default configuration with this prefix's paths, the
providers catalogue, the systemd unit, the man pages, the SDK and the
documents with every link working.

Both tests install this build (EVS_BUILD_DIR) into a scratch directory, never
into the system: `cmake --install --prefix DIR`, and `cpack -G DEB` then
`dpkg -x` into a scratch root. Then they run the installed programs: the
installed config passes --check-config; a daemon started from it (its
`listen:` moved to a free port, and for the .deb its absolute paths moved
into the scratch root) loads a plugin built against the installed SDK and
signed by the installed `evscript`, and the installed CLI shows it run.
"""

import gzip
import os
import re
import shutil
import subprocess
import tempfile
import unittest

from harness import DaemonTest, env, free_port, wait_for

SECRET = "install-test-secret"
HELLO = r"""
#include <evscript/sdk.h>

EVS_PLUGIN("installed", "1.0.0");

int on_event(const struct evs_host *host, struct evs_ctx *ctx, const struct evs_event *event)
{
    host->log(ctx, EVS_LOG_INFO, "built against the installed SDK, for %s", event->connection_id);
    return 0;
}
"""


def run(*cmd, **kw):
    kw.setdefault("timeout", 300)
    proc = subprocess.run(list(cmd), capture_output=True, text=True, **kw)
    if proc.returncode != 0:
        raise AssertionError(f"{cmd} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


def markdown_links(path):
    with open(path) as f:
        text = f.read()
    return [m for m in re.findall(r"\]\(([^)#: ]+)[)#]", text) if not m.startswith(("http", "mailto"))]


class InstallTest(DaemonTest):
    def setUp(self):
        super().setUp()
        self.tmp = tempfile.mkdtemp(prefix="evs-install-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.build = env("EVS_BUILD_DIR")
        self.procs = []

    def tearDown(self):
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
                p.wait(60)
        super().tearDown()

    def check_docs(self, docdir):
        """Every relative link of every installed document leads to an installed file."""
        docs = []
        for dirpath, _, files in os.walk(docdir):
            docs += [os.path.join(dirpath, f) for f in files if f.endswith(".md")]
        self.assertIn(os.path.join(docdir, "README.md"), docs)
        self.assertIn(os.path.join(docdir, "docs", "operations.md"), docs)
        checked = 0
        for doc in docs:
            for link in markdown_links(doc):
                target = os.path.normpath(os.path.join(os.path.dirname(doc), link))
                self.assertTrue(os.path.isfile(target), f"{doc}: {link} leads nowhere")
                checked += 1
        self.assertGreater(checked, 10)

    def check_man(self, mandir):
        for page, title in (("man8/evscriptd.8.gz", "EVSCRIPTD"), ("man1/evscript.1.gz", "EVSCRIPT")):
            path = os.path.join(mandir, page)
            with gzip.open(path, "rt") as f:
                source = f.read()
            self.assertTrue(source.startswith(f".TH {title} "), path)
            # groff with every warning on says nothing
            r = run("groff", "-man", "-Tutf8", "-ww", "-z", input=source)
            self.assertEqual(r.stderr, "", f"{page}: groff warnings")
            r = run("man", "-l", path, env=dict(os.environ, MANWIDTH="80"))
            self.assertIn("SEE ALSO", re.sub(".\b", "", r.stdout))  # without the overstrikes

    def check_depends(self, info, root):
        """Depends names real packages (installed here, as on the machine that
        built it) that provide every library the installed programs need."""
        depends = [d.strip() for d in re.search(r"^ Depends: (.*)$", info, re.M).group(1).split(",")]
        for dep in depends:
            r = run("dpkg-query", "-W", "-f=${Status}", dep)
            self.assertEqual(r.stdout, "install ok installed", dep)
        for prog in ("usr/bin/evscriptd", "usr/bin/evscript", "usr/libexec/evscript/evscript-zygote"):
            needed = re.findall(r"^\s*NEEDED\s+(\S+)$", run("objdump", "-p", os.path.join(root, prog)).stdout, re.M)
            self.assertTrue(needed, prog)
            for lib in needed:
                # libc is essential; the sanitizer runtimes belong to test builds (asan preset)
                if lib.startswith(("libc.so", "libm.so", "libasan.so", "libubsan.so")):
                    continue
                path = run("sh", "-c", f"ldconfig -p | awk '$1 == \"{lib}\" {{print $NF; exit}}'").stdout.strip()
                self.assertTrue(path, f"{prog}: {lib} not found")
                owner = run("dpkg", "-S", os.path.realpath(path)).stdout.split(":")[0]
                self.assertIn(owner, depends, f"{prog} needs {lib} from {owner}, not in Depends")

    def daemon_from(self, bindir, config_text, config_dir):
        """Starts the installed evscriptd with config_text written next to the installed config."""
        port = free_port()
        text = re.sub(r"^listen: .*$", f"listen: 127.0.0.1:{port}", config_text, flags=re.M)
        path = os.path.join(config_dir, "evscript-test.yaml")
        with open(path, "w") as f:
            f.write(text)
        log = open(os.path.join(self.tmp, "evscriptd.log"), "w")
        self.addCleanup(log.close)
        proc = subprocess.Popen([os.path.join(bindir, "evscriptd"), "--config", path], stdout=log,
                                stderr=subprocess.STDOUT, env=dict(os.environ, EVSCRIPT_SECRET_KEY=SECRET),
                                cwd=self.tmp)
        self.procs.append(proc)
        url = f"http://127.0.0.1:{port}"
        cli_env = dict(os.environ, EVSCRIPT_URL=url, EVSCRIPT_SECRET_KEY=SECRET)

        def up():
            if proc.poll() is not None:
                raise AssertionError("evscriptd exited:\n" + open(log.name).read())
            return subprocess.run([os.path.join(bindir, "evscript"), "status"], env=cli_env,
                                  capture_output=True).returncode == 0
        wait_for(up, 60, interval=0.1, what="the installed evscriptd")
        return proc, cli_env

    def deploy_and_run(self, bindir, cli_env, cflags, keys_dir, plugin_dir, nango):
        """Builds a plugin against the installed SDK, signs it with the installed
        evscript, deploys it, reloads with the installed CLI and sees it run."""
        evscript = os.path.join(bindir, "evscript")
        src = os.path.join(self.tmp, "installed.c")
        with open(src, "w") as f:
            f.write(HELLO)
        so = os.path.join(self.tmp, "installed.so")
        run("cc", "-shared", *cflags, "-o", so, src)
        run(evscript, "keygen", "-p", os.path.join(keys_dir, "test.pub"), "-s", os.path.join(self.tmp, "test.key"))
        run(evscript, "sign", "-s", os.path.join(self.tmp, "test.key"), "-m", so, "-t",
            "plugin:installed version:1.0.0 abi:1")
        for name in ("installed.so.minisig", "installed.so"):
            shutil.copyfile(os.path.join(self.tmp, name), os.path.join(plugin_dir, "." + name + ".tmp"))
            os.rename(os.path.join(plugin_dir, "." + name + ".tmp"), os.path.join(plugin_dir, name))
        with open(nango, "w") as f:
            f.write("integrations:\n    demo:\n        provider: local-test\n        on-events:\n"
                    "            post-connection-creation:\n                - installed\n")
        r = run(evscript, "reload", env=cli_env)
        self.assertRegex(r.stdout, r"loaded +installed +1\.0\.0 +event")
        subprocess.run(["curl", "-sf", "-X", "POST", cli_env["EVSCRIPT_URL"] + "/connections",
                        "-H", f"Authorization: Bearer {SECRET}", "-H", "Content-Type: application/json",
                        "-d", '{"provider_config_key":"demo","connection_id":"inst-1",'
                              '"credentials":{"type":"API_KEY","apiKey":"k"},"connection_config":{"port":"1"}}'],
                       check=True, capture_output=True, timeout=60)
        line = wait_for(lambda: [x for x in run(evscript, "executions", env=cli_env).stdout.splitlines()
                                 if " succeeded " in x], 60, interval=0.1, what="the execution")[0]
        self.assertIn("demo/inst-1 installed@1.0.0", line)
        r = run(evscript, "logs", line.split()[0], env=cli_env)
        self.assertIn("built against the installed SDK, for inst-1", r.stdout)

    def test_cmake_install_works_as_installed(self):
        prefix = os.path.join(self.tmp, "prefix")
        run("cmake", "--install", self.build, "--prefix", prefix)
        confdir = os.path.join(prefix, "etc", "evscript")
        with open(os.path.join(confdir, "evscript.yaml")) as f:
            config = f.read()
        # the paths are this prefix's, and each exists
        for key, path in (("plugin_dir", "lib/evscript/plugins"), ("trusted_keys_dir", "etc/evscript/keys"),
                          ("providers", "share/evscript/providers.yaml")):
            self.assertIn(f"{key}: {prefix}/{path}\n", config)
            self.assertTrue(os.path.exists(os.path.join(prefix, path)), path)
        self.assertIn(f"store: sqlite:{prefix}/var/lib/evscript/evscript.db\n", config)
        self.assertTrue(os.path.isdir(os.path.join(prefix, "var/lib/evscript")))
        with open(os.path.join(prefix, "lib/systemd/system/evscriptd.service")) as f:
            unit = f.read()
        self.assertIn(f"ExecStart={prefix}/bin/evscriptd --config {confdir}/evscript.yaml\n", unit)
        self.assertIn(f"EnvironmentFile=-{confdir}/evscript.env\n", unit)
        self.assertIn(f"Documentation=file://{prefix}/share/doc/evscript/docs/operations.md", unit)
        self.assertNotIn("/usr/local", unit)
        self.assertTrue(os.path.isfile(os.path.join(prefix, "share/doc/evscript/docs/operations.md")))
        self.check_docs(os.path.join(prefix, "share/doc/evscript"))
        self.check_man(os.path.join(prefix, "share/man"))
        # the installed config as it is: valid, once the secret is given
        bindir = os.path.join(prefix, "bin")
        r = subprocess.run([os.path.join(bindir, "evscriptd"), "--config", os.path.join(confdir, "evscript.yaml"),
                            "--check-config"], capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 1)
        self.assertIn("secret_key is not set", r.stdout + r.stderr)
        run(os.path.join(bindir, "evscriptd"), "--config", os.path.join(confdir, "evscript.yaml"),
            "--check-config", env=dict(os.environ, EVSCRIPT_SECRET_KEY=SECRET))
        _, cli_env = self.daemon_from(bindir, config, confdir)
        pc = run("pkg-config", "--cflags", "evscript-sdk",
                 env=dict(os.environ, PKG_CONFIG_PATH=os.path.join(prefix, "lib/pkgconfig"))).stdout.split()
        self.deploy_and_run(bindir, cli_env, pc, os.path.join(confdir, "keys"),
                            os.path.join(prefix, "lib/evscript/plugins"), os.path.join(confdir, "nango.yaml"))

    def test_deb_installs_into_a_scratch_root(self):
        out = os.path.join(self.tmp, "pkg")
        run("cpack", "-G", "DEB", "-B", out, "--config", os.path.join(self.build, "CPackConfig.cmake"),
            cwd=self.build)
        debs = [f for f in os.listdir(out) if f.endswith(".deb")]
        self.assertEqual(len(debs), 1, debs)
        deb = os.path.join(out, debs[0])
        info = run("dpkg-deb", "-I", deb).stdout
        self.assertIn("Package: evscript", info)
        self.assertRegex(info, r"Depends: .*libmicrohttpd12")
        self.assertIn("conffiles", info)
        root = os.path.join(self.tmp, "root")
        run("dpkg", "-x", deb, root)
        self.check_depends(info, root)
        files = run("dpkg-deb", "-c", deb).stdout
        for path in ("./usr/bin/evscriptd", "./usr/bin/evscript", "./usr/libexec/evscript/evscript-zygote",
                     "./usr/include/evscript/sdk.h", "./usr/lib/pkgconfig/evscript-sdk.pc",
                     "./usr/lib/cmake/evscript/evscriptConfig.cmake", "./usr/lib/systemd/system/evscriptd.service",
                     "./usr/share/man/man8/evscriptd.8.gz", "./usr/share/man/man1/evscript.1.gz",
                     "./etc/evscript/evscript.yaml", "./etc/evscript/keys/", "./var/lib/evscript/",
                     "./usr/share/evscript/providers.yaml", "./usr/share/doc/evscript/README.md"):
            self.assertRegex(files, rf" {re.escape(path)}\n", path)
        self.assertNotIn(self.tmp, files)  # nothing of the build machine's paths
        with open(os.path.join(root, "usr/lib/systemd/system/evscriptd.service")) as f:
            self.assertIn("ExecStart=/usr/bin/evscriptd --config /etc/evscript/evscript.yaml\n", f.read())
        self.check_docs(os.path.join(root, "usr/share/doc/evscript"))
        self.check_man(os.path.join(root, "usr/share/man"))
        bindir = os.path.join(root, "usr/bin")
        self.assertIn("evscriptd", run(os.path.join(bindir, "evscriptd"), "--version").stdout)
        self.assertIn("executions", run(os.path.join(bindir, "evscript"), "--help").stdout)
        # the package's config, its absolute paths moved into the scratch root
        with open(os.path.join(root, "etc/evscript/evscript.yaml")) as f:
            config = f.read()
        moved = re.sub(r"(: (?:sqlite:)?)/(usr|etc|var)/", rf"\1{root}/\2/", config)
        self.assertEqual(moved.count(root), 4, moved)
        _, cli_env = self.daemon_from(bindir, moved, os.path.join(root, "etc/evscript"))
        pc = run("pkg-config", "--cflags", "evscript-sdk",
                 env=dict(os.environ, PKG_CONFIG_PATH=os.path.join(root, "usr/lib/pkgconfig"))).stdout.split()
        self.assertIn(f"{root}/usr/include", [os.path.normpath(f[2:]) for f in pc if f.startswith("-I")])
        self.deploy_and_run(bindir, cli_env, pc, os.path.join(root, "etc/evscript/keys"),
                            os.path.join(root, "usr/lib/evscript/plugins"), os.path.join(root, "etc/evscript/nango.yaml"))


if __name__ == "__main__":
    unittest.main()
