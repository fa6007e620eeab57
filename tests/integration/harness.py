"""Integration test harness: the real evscriptd, real HTTP, a fake provider.

Only the Python standard library. Paths come from the environment that
tests/integration/CMakeLists.txt sets for ctest:
  EVSCRIPTD            the daemon binary
  EVSCRIPT_CLI         the evscript command (keygen/sign/verify)
  EVS_PLUGINS_DIR      example plugins built and signed by the build (plugins.d)
  EVS_TEST_PLUGINS_DIR test-only plugins (crash, hang, ...), signed the same way
  EVS_TRUSTED_DIR      the directory with the development public key
  EVS_SECRET_KEYFILE   the development secret key (to sign test variants)
  EVS_PROVIDERS        the repo's providers catalogue
  EVS_TEST_STORE       "sqlite" (the default) or "pg": the back end every Daemon uses
  EVS_PG_DIR           with "pg": the private server's directory (pg_server.py); each
                       Daemon gets a fresh database of its own on it, unless it is
                       given a store URL (several hosts on one database)
"""

import collections
import http.server
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.parse
import urllib.request

import pg_server

SECRET = "test-secret-key-0123456789"

# Nango's official node client and the tests that drive it with node.
NANGO_CLIENT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "nango-client")

# The source tree, and the cc flag for the SDK's headers in it.
SRC_DIR = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SDK_INCLUDE = "-I" + os.path.join(SRC_DIR, "plugin-sdk", "include")

# The back end the daemons of this run use (a ctest label per back end).
STORE = os.environ.get("EVS_TEST_STORE", "sqlite")


def pg_dir():
    return os.environ["EVS_PG_DIR"]


def new_pg_database(name=None):
    """A fresh database on the private server: (its URL, its name)."""
    name = name or "evs_" + os.urandom(6).hex()
    return pg_server.create_database(pg_dir(), name), name


def env(name):
    value = os.environ.get(name)
    if not value:
        raise RuntimeError(f"{name} is not set: run this test through ctest")
    return value


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(pred, timeout=20.0, interval=0.02, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


# /proc readers, for the tests that count the daemon's processes (its zygote,
# the executors under it and whatever a plugin forks).

ProcStat = collections.namedtuple("ProcStat", "comm state ppid starttime")


def proc_stat(pid):
    """ProcStat of a process from /proc/PID/stat, or None when it is gone.
    A zombie is still there, with state "Z"; starttime is in clock ticks since
    boot, so (pid, starttime) names one process even if the pid is reused."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            s = f.read()
    except OSError:
        return None
    # comm may hold spaces and parentheses: it ends at the last ")"
    rest = s[s.rindex(")") + 2:].split()
    return ProcStat(s[s.index("(") + 1:s.rindex(")")], rest[0], int(rest[1]), int(rest[19]))


def processes():
    """{pid: ProcStat} of every process."""
    out = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            st = proc_stat(entry)
            if st:
                out[int(entry)] = st
    return out


def children(pid):
    """{child pid: ProcStat} of the direct children of pid, zombies included."""
    return {p: st for p, st in processes().items() if st.ppid == pid}


def pids_named(comm):
    """Pids of the processes whose name (comm) is comm, zombies included."""
    return [p for p, st in processes().items() if st.comm == comm]


def write_file(path, text):
    """Writes text to path; returns path."""
    with open(path, "w") as f:
        f.write(text)
    return path


def cc_plugin(src, so, *flags, libs=(), cwd=None):
    """Compiles the plugin source file src into the shared object so against
    the SDK's headers of the source tree (cc FLAGS -shared -fPIC -I... -o so
    src LIBS); returns so."""
    subprocess.run(["cc", *flags, "-shared", "-fPIC", SDK_INCLUDE, "-o", so, src, *libs], check=True, cwd=cwd)
    return so


def sign_plugin(so, comment=None):
    """Signs so with the development key, with the trusted comment given (else
    the one the CLI reads from the plugin's info); returns so."""
    cmd = [env("EVSCRIPT_CLI"), "sign", "-q", "-s", env("EVS_SECRET_KEYFILE"), "-m", so]
    subprocess.run(cmd + (["-t", comment] if comment else []), check=True)
    return so


class FakeProvider:
    """A provider API on 127.0.0.1 that records every request it gets.

    Routes are programmed with `route(method, path, *responses)`: each request
    takes the next response, the last one stays. A response is a dict with
    status, headers and body (a str, bytes or a JSON-able value)."""

    def __init__(self):
        self.requests = []
        self.routes = {}
        self.lock = threading.Lock()
        provider = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def handle_any(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                url = urllib.parse.urlsplit(self.path)
                record = {
                    "time": time.monotonic(),  # when it arrived (retry tests measure waits)
                    "method": self.command,
                    "path": url.path,
                    "query": dict(urllib.parse.parse_qsl(url.query, keep_blank_values=True)),
                    "headers": {k.lower(): v for k, v in self.headers.items()},
                    "body": body,
                }
                with provider.lock:
                    provider.requests.append(record)
                    queue = provider.routes.get((self.command, url.path))
                    if queue:
                        response = queue.pop(0) if len(queue) > 1 else queue[0]
                    else:
                        response = {"status": 404, "body": {"message": "no such route"}}
                if callable(response):
                    response = response(record)
                delay = response.get("delay", 0)
                if delay:
                    time.sleep(delay)
                payload = response.get("body", b"")
                if not isinstance(payload, (bytes, str)):
                    payload = json.dumps(payload)
                if isinstance(payload, str):
                    payload = payload.encode()
                self.send_response(response.get("status", 200))
                headers = {"Content-Type": "application/json"}
                headers.update(response.get("headers", {}))
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = handle_any

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def route(self, method, path, *responses):
        with self.lock:
            self.routes[(method, path)] = list(responses)

    def received(self, method=None, path=None):
        with self.lock:
            return [r for r in self.requests
                    if (method is None or r["method"] == method) and (path is None or r["path"] == path)]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class Daemon:
    """One evscriptd with its own temporary directory, config and store."""

    def __init__(self, nango_yaml, settings=None, plugins=(), test_plugins=(), workdir=None, store=None):
        self.dir = workdir or tempfile.mkdtemp(prefix="evs-it-")
        self.store, self.pg_database = store, None
        if self.store is None and STORE == "pg":
            # one database per daemon directory: a daemon restarted over the
            # same directory finds its store again
            marker = os.path.join(self.dir, ".pg-database")
            name = open(marker).read().strip() if os.path.exists(marker) else None
            self.store, self.pg_database = new_pg_database(name)
            with open(marker, "w") as f:
                f.write(self.pg_database)
        self.plugin_dir = os.path.join(self.dir, "plugins.d")
        os.makedirs(self.plugin_dir, exist_ok=True)
        os.chmod(self.plugin_dir, 0o755)  # whatever the umask: the daemon refuses a writable one
        for name in plugins:
            self.deploy(os.path.join(env("EVS_PLUGINS_DIR"), name + ".so"))
        for name in test_plugins:
            self.deploy(os.path.join(env("EVS_TEST_PLUGINS_DIR"), name + ".so"))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config_path = os.path.join(self.dir, "evscript.yaml")
        self.log_path = os.path.join(self.dir, "evscriptd.log")
        self.nango_yaml = nango_yaml
        self.settings = dict(settings or {})
        self.proc = None
        self.command_prefix = []  # e.g. setpriv, to run the daemon as another user
        self.executable = env("EVSCRIPTD")
        self.write_config()

    def write_config(self):
        with open(os.path.join(self.dir, "nango.yaml"), "w") as f:
            f.write(self.nango_yaml)
        cfg = {
            "listen": f"127.0.0.1:{self.port}",
            "secret_key": SECRET,
            "store": self.store or "sqlite:./evscript.db",
            "plugin_dir": "./plugins.d",
            "trusted_keys_dir": env("EVS_TRUSTED_DIR"),
            "providers": env("EVS_PROVIDERS"),
            "nango_yaml": "./nango.yaml",
        }
        cfg.update(self.settings)
        # JSON is YAML: the daemon reads this with its YAML parser.
        with open(self.config_path, "w") as f:
            json.dump(cfg, f, indent=2)

    def deploy(self, so_path, name=None):
        """Copies NAME.so and NAME.so.minisig in with write-then-rename, as operators should."""
        name = name or os.path.basename(so_path)[:-3]
        for src, dst in ((so_path, name + ".so"), (so_path + ".minisig", name + ".so.minisig")):
            if not os.path.exists(src):
                continue
            tmp = os.path.join(self.plugin_dir, "." + dst + ".tmp")
            shutil.copyfile(src, tmp)
            os.rename(tmp, os.path.join(self.plugin_dir, dst))

    def valgrind_prefix(self):
        """With EVS_VALGRIND=1 (a build without sanitizers: docs/operations.md),
        the daemon runs under valgrind's memcheck; valgrind_errors() reads what
        it found. The zygote and executors are not traced."""
        if os.environ.get("EVS_VALGRIND") != "1":
            return []
        return ["valgrind", "--quiet", "--leak-check=full", "--show-leak-kinds=definite",
                "--errors-for-leak-kinds=definite", "--track-origins=no",
                f"--log-file={self.dir}/valgrind.%p.log"]

    def valgrind_errors(self):
        """The reports of valgrind logs with errors or definite leaks ("" when
        none). With --quiet, errors are the "==PID==" lines; "--PID--" lines
        are valgrind's own warnings (e.g. a system call it does not know)."""
        out = []
        for name in sorted(os.listdir(self.dir)):
            if name.startswith("valgrind.") and name.endswith(".log"):
                with open(os.path.join(self.dir, name), errors="replace") as f:
                    text = "".join(line for line in f if re.match(r"==\d+== ", line))
                if text.strip():
                    out.append(f"--- {name}\n{text}")
        return "\n".join(out)

    def start(self, extra_env=None, wait=True):
        e = dict(os.environ)
        e.pop("EVSCRIPT_SECRET_KEY", None)
        e.update(extra_env or {})
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.command_prefix + self.valgrind_prefix() +
                                     [self.executable, "--config", self.config_path],
                                     cwd=self.dir, stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=e)
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout=30.0):
        def ready():
            if self.proc.poll() is not None:
                raise AssertionError(f"evscriptd exited with {self.proc.returncode}:\n{self.logs()}")
            try:
                status, _, _ = self.request("GET", "/healthz", auth=False, timeout=1)
                return status == 200
            except (ConnectionError, OSError):
                return False
        wait_for(ready, timeout, what="evscriptd to answer /healthz")

    def logs(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def send_signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, sig=None, timeout=30.0):
        sig = signal.SIGTERM if sig is None else sig
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("evscriptd did not exit in time:\n" + self.logs())
        if self.proc:
            self.log.close()
        code = self.proc.returncode if self.proc else None
        self.proc = None
        return code

    def kill9(self):
        self.proc.kill()
        self.proc.wait()
        self.log.close()
        self.proc = None

    def cleanup(self):
        if self.proc:
            self.stop()
        if self.pg_database:
            pg_server.drop_database(pg_dir(), self.pg_database)
        shutil.rmtree(self.dir, ignore_errors=True)

    def request(self, method, path, body=None, headers=None, auth=True, raw=None, timeout=60):
        hdrs = {"Content-Type": "application/json"}
        if auth:
            hdrs["Authorization"] = f"Bearer {SECRET}"
        hdrs.update(headers or {})
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=hdrs)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                status, rhdrs, payload = resp.status, dict(resp.headers), resp.read()
        except urllib.error.HTTPError as e:
            status, rhdrs, payload = e.code, dict(e.headers), e.read()
        try:
            doc = json.loads(payload) if payload else None
        except ValueError:
            doc = payload.decode(errors="replace")
        return status, rhdrs, doc

    def request_expect(self, method, path, body, headers=None, auth=True, timeout=30):
        """Sends a request with `Expect: 100-continue` over a plain socket and
        sends the body only if the server asks for it. For bodies the server
        refuses before reading them (401, 413): without 100-continue the
        server's early answer races the upload and the client may see a reset
        instead of the response."""
        hdrs = {"Host": f"127.0.0.1:{self.port}", "Content-Type": "application/json",
                "Content-Length": str(len(body)), "Expect": "100-continue", "Connection": "close"}
        if auth:
            hdrs["Authorization"] = f"Bearer {SECRET}"
        hdrs.update(headers or {})
        head = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in hdrs.items()) + "\r\n"
        with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as sock:
            sock.sendall(head.encode())
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
            if data.startswith(b"HTTP/1.1 100"):
                sock.sendall(body)
                data = data.split(b"\r\n\r\n", 1)[1]
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        head, _, payload = data.partition(b"\r\n\r\n")
        lines = head.decode(errors="replace").split("\r\n")
        status = int(lines[0].split()[1])
        rhdrs = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
        if rhdrs.get("Transfer-Encoding", "").lower() == "chunked":
            out, rest = b"", payload
            while rest:
                size_line, _, rest = rest.partition(b"\r\n")
                size = int(size_line.split(b";")[0], 16)
                if size == 0:
                    break
                out, rest = out + rest[:size], rest[size + 2:]
            payload = out
        try:
            doc = json.loads(payload) if payload else None
        except ValueError:
            doc = payload.decode(errors="replace")
        return status, rhdrs, doc

    # Conveniences over the API.
    def create_connection(self, integration, connection_id, credentials=None, **extra):
        body = {"provider_config_key": integration, "connection_id": connection_id,
                "credentials": credentials or {"type": "API_KEY", "apiKey": "k-" + connection_id}}
        body.update(extra)
        return self.request("POST", "/connections", body)

    def executions(self, **filters):
        query = urllib.parse.urlencode(filters)
        status, _, doc = self.request("GET", "/executions" + ("?" + query if query else ""))
        assert status == 200, (status, doc)
        return doc["executions"]

    def execution(self, execution_id):
        status, _, doc = self.request("GET", f"/executions/{execution_id}")
        assert status == 200, (status, doc)
        return doc

    def wait_executions(self, count, timeout=30.0, final=True, **filters):
        """Waits until `count` executions match and (with final) none is running."""
        def done():
            ex = self.executions(**filters)
            if len(ex) < count:
                return None
            if final and any(e["status"] == "running" for e in ex):
                return None
            return ex
        return wait_for(done, timeout, what=f"{count} executions {filters}")


class DaemonTest(unittest.TestCase):
    """Base class: self.provider is a running FakeProvider; daemons made with
    self.daemon(...) are stopped and removed after the test."""

    def setUp(self):
        self.provider = FakeProvider()
        self._daemons = []

    def tearDown(self):
        valgrind = []
        for d in self._daemons:
            try:
                if self._outcome_failed():
                    print(f"--- evscriptd log ({d.dir}) ---\n{d.logs()}")
                if os.environ.get("EVS_VALGRIND") == "1":
                    d.stop()
                    valgrind.append(d.valgrind_errors())
                d.cleanup()
            except Exception as exc:  # keep cleaning up the others
                print("cleanup:", exc)
        self.provider.close()
        found = "\n".join(v for v in valgrind if v)
        if found:
            self.fail("valgrind found errors or definite leaks:\n" + found)

    def _outcome_failed(self):
        outcome = getattr(self, "_outcome", None)
        result = getattr(outcome, "result", None)
        if result is None:
            return False
        return any(t is self for t, _ in result.failures + result.errors)

    def tempdir(self, prefix="evs-"):
        """A new temporary directory, removed after the test."""
        d = tempfile.mkdtemp(prefix=prefix)
        self.addCleanup(shutil.rmtree, d, True)
        return d

    def nango_client(self):
        """The node binary, with Nango's official client (@nangohq/node) installed
        in NANGO_CLIENT_DIR (`npm ci` when it is not yet): the test fails
        without node, or without npm when the client must be installed."""
        node, npm = shutil.which("node"), shutil.which("npm")
        self.assertIsNotNone(node, "node is required for this test")
        if not os.path.isdir(os.path.join(NANGO_CLIENT_DIR, "node_modules", "@nangohq", "node")):
            self.assertIsNotNone(npm, "npm is required to install the client")
            subprocess.run([npm, "ci", "--prefix", NANGO_CLIENT_DIR], check=True, timeout=600)
        return node

    def daemon(self, nango_yaml, start=True, **kw):
        d = Daemon(nango_yaml, **kw)
        self._daemons.append(d)
        if start:
            d.start()
        return d


class BuildDirTest(DaemonTest):
    """A DaemonTest whose tests share a temporary directory, cls.tmp (named
    after tmp_prefix), for the plugins they build; removed after them."""

    tmp_prefix = "evs-"

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.tmp = tempfile.mkdtemp(prefix=cls.tmp_prefix)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)
        super().tearDownClass()
