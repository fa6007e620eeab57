#!/usr/bin/env python3
"""Several hosts on PostgreSQL against one on SQLite (issue 11,
docs/benchmarks.md "Several hosts on PostgreSQL"): events per second end to
end through the HTTP API.

One run, all rows in it:
  - a private PostgreSQL server (tests/integration/pg_server.py: initdb in a
    temporary directory, a free loopback port, fsync and synchronous_commit
    on, as in production), stopped at the end;
  - per row, 1 host on SQLite (sqlite:./evscript.db, default durability) or
    N hosts on one fresh PostgreSQL database; each host has max_concurrency
    8 and one integration whose post-connection-creation script is the test
    plugin noop, run in-process (what is measured is the API, the store and
    the dispatch, not fork: executors would only measure this machine's two
    cores);
  - one wrk per host at once (`wrk -t1 -c<C> -d<S>s -s load.lua`: POST
    /connections, a new id per request), then a wait until no event is
    pending or claimed and no execution running;
  - measured: acknowledged creations (201) per second (sum over the hosts'
    wrk runs) and executions finished per second (count / (last end - first
    start)), from the database, with the share each host ran;
  - a floor: pgbench inserting one row per commit with 1 and with 8
    clients on the same server (what its commits cost on this machine);
  - checked: every acknowledged creation has exactly one execution,
    succeeded, and no connection has two (exactly once across hosts);
    otherwise FAILED and exit status 1.

Usage: hosts.py --build-dir DIR [--duration S] [--hosts 1,2,3] [--connections C]
Standard library only (psql for PostgreSQL, sqlite3 for SQLite)."""
import argparse
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import pg_server  # noqa: E402

SECRET = "bench-hosts-secret-0123456789"


class Failed(Exception):
    pass


def free_port():
    return pg_server.free_port()


class Host:
    def __init__(self, build, source, workdir, store, host_id, connections):
        self.dir = workdir
        os.makedirs(os.path.join(workdir, "plugins.d"))
        for f in ("noop.so", "noop.so.minisig"):
            shutil.copyfile(os.path.join(build, "tests/plugins.d", f), os.path.join(workdir, "plugins.d", f))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cfg = {
            "listen": f"127.0.0.1:{self.port}", "secret_key": SECRET, "store": store,
            "host_id": host_id, "plugin_dir": "./plugins.d",
            "trusted_keys_dir": os.path.join(build, "dev-keys/trusted"),
            "providers": os.path.join(source, "providers/providers.yaml"),
            "max_concurrency": 8,
            "integrations": {"inproc": {"provider": "local-test", "execution": "in-process",
                                        "on-events": {"post-connection-creation": ["noop"]}}},
        }
        self.config = os.path.join(workdir, "evscript.yaml")
        with open(self.config, "w") as f:
            json.dump(cfg, f)
        self.exe = os.path.join(build, "runtime/daemon/evscriptd")
        self.proc = None

    def start(self):
        self.log = open(os.path.join(self.dir, "evscriptd.log"), "ab")
        env = dict(os.environ)
        env.pop("EVSCRIPT_SECRET_KEY", None)
        self.proc = subprocess.Popen([self.exe, "--config", self.config], cwd=self.dir, env=env,
                                     stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT)

    def wait_ready(self):
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise Failed(f"evscriptd exited with {self.proc.returncode}; log in {self.dir}")
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.05)
        raise Failed(f"evscriptd did not start; log in {self.dir}")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(120)
        if self.proc:
            self.log.close()
        self.proc = None


def drive(hosts, args, workdir, tag):
    """One wrk per host at once; returns (acked ids, creations per second)."""
    procs = []
    for i, h in enumerate(hosts):
        ids = os.path.join(workdir, f"{tag}-{i}.acked")
        env = dict(os.environ, EVS_LOAD_SECRET=SECRET, EVS_LOAD_INTEGRATION="inproc",
                   EVS_LOAD_PREFIX=f"{tag}-h{i}", EVS_LOAD_IDS=ids)
        argv = ["wrk", "-t1", f"-c{args.connections}", f"-d{args.duration}s", "--timeout", "30s",
                "-s", os.path.join(HERE, "load.lua"), h.url]
        procs.append((subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                       text=True), ids))
    acked, rate = [], 0.0
    for p, ids in procs:
        out, _ = p.communicate()
        if p.returncode != 0:
            raise Failed(f"wrk failed:\n{out}")
        with open(ids) as f:
            got = [line.strip() for line in f if line.strip()]
        acked += got
        rate += len(got) / args.duration
    return acked, rate


class Db:
    """The store's tables, read from outside the hosts."""

    def __init__(self, sqlite_path=None, pg_dir=None, pg_db=None):
        self.sqlite_path, self.pg_dir, self.pg_db = sqlite_path, pg_dir, pg_db

    def rows(self, sql):
        if self.sqlite_path:
            con = sqlite3.connect(f"file:{self.sqlite_path}?mode=ro", uri=True, timeout=30)
            try:
                return [tuple(r) for r in con.execute(sql)]
            finally:
                con.close()
        out = pg_server.psql(self.pg_dir, sql.replace("\n", " "), db=self.pg_db)
        return [tuple(line.split("|")) for line in out.splitlines() if line]


def wait_idle(db, timeout=300):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        (busy,) = db.rows("SELECT (SELECT count(*) FROM events WHERE status IN ('pending', 'claimed'))"
                          " + (SELECT count(*) FROM executions WHERE status = 'running')")[0]
        if int(busy) == 0:
            return
        time.sleep(0.2)
    raise Failed("the hosts did not finish the work in time")


def measure(db, acked):
    rows = db.rows("SELECT connection_id, status, started_at, ended_at, host_id FROM executions")
    by_conn, per_host = {}, {}
    for cid, status, started, ended, host in rows:
        by_conn.setdefault(cid, []).append(status)
        per_host[host] = per_host.get(host, 0) + 1
    twice = [c for c, s in by_conn.items() if len(s) > 1]
    missing = [c for c in acked if by_conn.get(c) != ["succeeded"]]
    if twice or missing:
        raise Failed(f"exactly once broken: {len(twice)} connections ran twice ({twice[:3]}), "
                     f"{len(missing)} acknowledged creations without one succeeded execution ({missing[:3]})")
    t0 = min(int(r[2]) for r in rows)
    t1 = max(int(r[3]) for r in rows)
    return len(rows) / max((t1 - t0) / 1000.0, 0.001), per_host


def one_row(args, workdir, pgdir, backend, n):
    tag = f"{backend}{n}"
    rowdir = os.path.join(workdir, tag)
    if backend == "sqlite":
        store, db = "sqlite:./evscript.db", Db(sqlite_path=os.path.join(rowdir, "h0", "evscript.db"))
    else:
        store = pg_server.create_database(pgdir, tag)
        if args.pg_synchronous_commit != "on":
            pg_server.psql(pgdir, f'ALTER DATABASE "{tag}" SET synchronous_commit = {args.pg_synchronous_commit}')
        db = Db(pg_dir=pgdir, pg_db=tag)
    hosts = [Host(args.build_dir, args.source_dir, os.path.join(rowdir, f"h{i}"), store, f"h{i}",
                  args.connections) for i in range(n)]
    try:
        for h in hosts:
            h.start()
        for h in hosts:
            h.wait_ready()
        acked, created = drive(hosts, args, rowdir, tag)
        wait_idle(db)
        events, per_host = measure(db, acked)
    finally:
        for h in hosts:
            h.stop()
    return {"backend": backend, "hosts": n, "created": created, "events": events, "per_host": per_host,
            "acked": len(acked)}


def pg_floor(pgdir, seconds, clients):
    """pgbench: one INSERT per commit, `clients` connections: the server's
    own commit rate on this machine (synchronous_commit on)."""
    db = "floor"
    url = pg_server.create_database(pgdir, db)
    pg_server.psql(pgdir, "CREATE TABLE IF NOT EXISTS t (id bigserial PRIMARY KEY, v bigint)", db=db)
    script = os.path.join(pgdir, "floor.sql")
    with open(script, "w") as f:
        f.write("INSERT INTO t (v) VALUES (1);\n")
    out = subprocess.run([os.path.join(pg_server.bindir(), "pgbench"), "-n", "-f", script, "-c", str(clients),
                          "-j", "1", "-T", str(seconds), url], capture_output=True, text=True)
    for line in out.stdout.splitlines():
        if line.startswith("tps = "):
            return float(line.split()[2])
    raise Failed(f"pgbench failed: {out.stdout}{out.stderr}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build-dir", required=True)
    ap.add_argument("--source-dir", default=os.path.normpath(os.path.join(HERE, "..", "..")))
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--connections", type=int, default=8, help="wrk connections per host")
    ap.add_argument("--hosts", default="1,2,3", help="host counts on PostgreSQL")
    ap.add_argument("--pg-synchronous-commit", default="on", choices=("on", "off"),
                    help="off: what the WAL flush costs (not durable: for comparison only)")
    args = ap.parse_args()
    args.build_dir = os.path.abspath(args.build_dir)
    workdir = tempfile.mkdtemp(prefix="evs-bench-hosts-")
    os.chmod(workdir, 0o755)  # the server runs as nobody when we are root
    pgdir = os.path.join(workdir, "pg")
    rows, failed = [], False
    try:
        pg_server.start(pgdir)
        floors = {c: pg_floor(pgdir, args.duration, c) for c in (1, 8)}
        plan = [("sqlite", 1)] + [("postgresql", int(n)) for n in args.hosts.split(",")]
        for backend, n in plan:
            print(f"hosts: {backend}, {n} host(s), {args.duration} s ...", file=sys.stderr, flush=True)
            rows.append(one_row(args, workdir, pgdir, backend, n))
    except Failed as e:
        print(f"FAILED: {e} (work directory kept: {workdir})", file=sys.stderr)
        failed = True
    finally:
        pg_server.stop(pgdir, remove=False)
    print(f"\n{os.cpu_count()} CPUs; {args.duration} s per row; wrk -t1 -c{args.connections} per host; "
          "script noop in-process; max_concurrency 8 per host\n")
    print("| store | hosts | creations acknowledged/s | events finished/s | vs 1 host on PostgreSQL | executions per host |")
    print("|---|---|---|---|---|---|")
    base = next((r["events"] for r in rows if r["backend"] == "postgresql" and r["hosts"] == 1), None)
    for r in rows:
        vs = f"{r['events'] / base:.2f}x" if base and r["backend"] == "postgresql" else ""
        share = ", ".join(f"{h}: {c}" for h, c in sorted(r["per_host"].items()))
        print(f"| {r['backend']} | {r['hosts']} | {r['created']:,.0f} | {r['events']:,.0f} | {vs} | {share} |")
    for c, tps in sorted(locals().get("floors", {}).items()):
        print(f"| floor: raw PostgreSQL, one INSERT per commit (pgbench -c{c}) | | {tps:,.0f} commits/s | | | |")
    if not failed:
        shutil.rmtree(workdir, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
