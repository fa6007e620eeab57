"""Many plugins against RLIMIT_NOFILE (issue 15): 2,000 signed plugins load,
run and reload under a soft limit of 1,024 descriptors (the daemon raises it
to the hard limit), neither the daemon nor the zygote holds a descriptor per
plugin (the daemon's count with 2,000 plugins is the count with 10, give or
take a few), and with a hard limit of 1,024 the daemon refuses to start with a
sentence naming the limit.

The 2,000 plugins are copies of the fdpad_0000 test plugin with the name in
its EVS_PLUGIN info replaced by another of the same length, each signed here
with the development key through libsodium (minisign's format, as
`evscript sign` writes it), so that making them takes a second, not 2,000
processes."""

import base64
import ctypes
import ctypes.util
import hashlib
import os
import shutil
import subprocess
import time

from harness import DaemonTest, children, env, wait_for

N_PLUGINS = int(os.environ.get("EVS_SCALE_PLUGINS", "2000"))
# descriptors the daemon may hold with 2,000 plugins beyond what it holds
# with 10 (a log line, a socket that closes late): a constant, not a count
# per plugin
FD_SLACK = 8

_sodium = ctypes.CDLL(ctypes.util.find_library("sodium") or "libsodium.so.23")
_sodium.sodium_init()


def _secret_key():
    """(key id, ed25519 secret key) of the development key (minisign, unencrypted)."""
    with open(env("EVS_SECRET_KEYFILE")) as f:
        raw = base64.b64decode(f.read().splitlines()[1])
    assert raw[0:2] == b"Ed" and raw[2:4] == b"\0\0", "an unencrypted minisign secret key"
    keynum = raw[54:]
    return keynum[0:8], keynum[8:72]


def _ed25519(sk, msg):
    sig = ctypes.create_string_buffer(64)
    assert _sodium.crypto_sign_detached(sig, None, msg, ctypes.c_ulonglong(len(msg)), sk) == 0
    return sig.raw


def sign(path, comment, key):
    """Writes path.minisig: a prehashed ("ED") minisign signature."""
    keyid, sk = key
    with open(path, "rb") as f:
        digest = hashlib.blake2b(f.read(), digest_size=64).digest()
    sig = _ed25519(sk, digest)
    global_sig = _ed25519(sk, sig + comment.encode())
    with open(path + ".minisig", "w") as f:
        f.write("untrusted comment: signature from evscript secret key\n")
        f.write(base64.b64encode(b"ED" + keyid + sig).decode() + "\n")
        f.write("trusted comment: " + comment + "\n")
        f.write(base64.b64encode(global_sig).decode() + "\n")


def make_plugins(plugin_dir, n):
    with open(os.path.join(env("EVS_TEST_PLUGINS_DIR"), "fdpad_0000.so"), "rb") as f:
        template = f.read()
    assert template.count(b"fdpad_0000") == 1
    key = _secret_key()
    names = [f"fdpad_{i:04d}" for i in range(n)]
    for name in names:
        path = os.path.join(plugin_dir, name + ".so")
        with open(path, "wb") as f:
            f.write(template.replace(b"fdpad_0000", name.encode()))
        sign(path, f"plugin:{name} version:1.0.0 abi:1", key)
    return names


def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


NANGO = """
integrations:
    demo:
        provider: local-test
        on-events:
            post-connection-creation:
                - fdpad_0000
                - LAST
"""


class ManyPlugins(DaemonTest):
    def limited(self, d, soft, hard):
        if os.environ.get("EVS_VALGRIND") == "1":
            self.skipTest("under valgrind the descriptor limit cannot be raised (valgrind keeps the hard "
                          "limit at the soft one and reserves some for itself)")
        if shutil.which("prlimit") is None:
            self.skipTest("prlimit (util-linux) is not installed")
        if os.geteuid() != 0:
            import resource
            if resource.getrlimit(resource.RLIMIT_NOFILE)[1] < hard:
                self.skipTest(f"needs root or a hard limit of {hard} descriptors")
        d.command_prefix = ["prlimit", f"--nofile={soft}:{hard}", "--"]

    def steady_fds(self, d):
        """The daemon's descriptors once it is idle: executions done, the
        zygote's executors forked ahead (their sockets are the daemon's)."""
        def settled():
            counts = []
            for _ in range(3):
                counts.append(fd_count(d.proc.pid))
                time.sleep(0.2)
            return counts[0] if len(set(counts)) == 1 else None
        return wait_for(settled, timeout=30, what="a steady descriptor count")

    def baseline_fds(self):
        """The daemon's descriptors with 10 plugins, after one event ran."""
        d = self.daemon(NANGO.replace("LAST", "fdpad_0009"), start=False)
        make_plugins(d.plugin_dir, 10)
        self.limited(d, 1024, 16384)
        d.start()
        self.assertEqual(d.create_connection("demo", "c1")[0], 201)
        d.wait_executions(2, connection_id="c1")
        n = self.steady_fds(d)
        d.stop()
        return n

    def test_2000_plugins_under_1024(self):
        last = f"fdpad_{N_PLUGINS - 1:04d}"
        base = self.baseline_fds()
        d = self.daemon(NANGO.replace("LAST", last), start=False)
        names = make_plugins(d.plugin_dir, N_PLUGINS)
        self.limited(d, 1024, 16384)
        d.start()
        self.assertIn("RLIMIT_NOFILE raised from 1024 to the hard limit 16384", d.logs())
        status, _, doc = d.request("GET", "/plugins")
        self.assertEqual(status, 200)
        self.assertEqual(sorted(p["name"] for p in doc["loaded"]), names)
        self.assertEqual(doc["refused"], [])

        # the zygote holds no descriptor per plugin
        zygotes = [p for p, st in children(d.proc.pid).items() if st.comm.startswith("evscript-zyg")]
        self.assertEqual(len(zygotes), 1, children(d.proc.pid))
        self.assertLess(fd_count(zygotes[0]), 100)

        # they run, and the daemon holds no descriptor per plugin either
        self.assertEqual(d.create_connection("demo", "c1")[0], 201)
        ex = d.wait_executions(2, connection_id="c1")
        self.assertEqual(sorted((e["script"], e["status"]) for e in ex),
                         [("fdpad_0000", "succeeded"), (last, "succeeded")])
        many = self.steady_fds(d)
        print(f"daemon descriptors: {base} with 10 plugins, {many} with {N_PLUGINS}; "
              f"zygote {fd_count(zygotes[0])}")
        self.assertLessEqual(abs(many - base), FD_SLACK, (base, many))

        # a reload builds a second generation of 2,000 beside the first, and
        # once the first has drained the count is back where it was
        status, _, doc = d.request("POST", "/reload")
        self.assertEqual(status, 200, doc)
        self.assertEqual(d.create_connection("demo", "c2")[0], 201)
        ex = d.wait_executions(2, connection_id="c2")
        self.assertEqual({e["status"] for e in ex}, {"succeeded"})
        wait_for(lambda: len([p for p, st in children(d.proc.pid).items()
                              if st.comm.startswith("evscript-zyg")]) == 1,
                 timeout=30, what="the first generation's zygote to exit")
        after = self.steady_fds(d)
        print(f"after a reload: {after} descriptors")
        self.assertLessEqual(abs(after - base), FD_SLACK, (base, after))
        self.assertNotIn("Too many open files", d.logs())

    def test_reload_refused_when_plugins_outgrow_the_limit(self):
        d = self.daemon(NANGO.replace("LAST", "fdpad_0001"), start=False)
        make_plugins(d.plugin_dir, 10)
        self.limited(d, 1024, 1024)
        d.start()
        # the zygote holds a descriptor per plugin while it opens them
        names = make_plugins(d.plugin_dir, 1100)
        status, _, doc = d.request("POST", "/reload")
        self.assertEqual(status, 422, doc)
        self.assertIn("too few file descriptors: RLIMIT_NOFILE is 1024 (hard limit 1024), and 1100 plugins",
                      doc["error"]["message"])
        status, _, doc = d.request("GET", "/plugins")
        self.assertEqual(len(doc["loaded"]), 10)   # the running generation stays
        self.assertNotIn("Too many open files", d.logs())
        self.assertEqual(len(names), 1100)

    def test_refused_when_the_hard_limit_is_too_low(self):
        d = self.daemon(NANGO.replace("LAST", "fdpad_0001"), start=False)
        make_plugins(d.plugin_dir, N_PLUGINS)
        self.limited(d, 1024, 1024)
        d.start(wait=False)
        code = d.proc.wait(60)
        d.proc = None
        d.log.close()
        self.assertEqual(code, 1, d.logs())
        self.assertIn(f"too few file descriptors: RLIMIT_NOFILE is 1024 (hard limit 1024), and {N_PLUGINS} "
                      "plugins", d.logs())
        self.assertIn("LimitNOFILE=", d.logs())
