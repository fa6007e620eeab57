#!/usr/bin/env python3
"""The load benchmark of tests/bench/load.sh (docs/benchmarks.md, issue 10):
events per second end to end through the HTTP API, on three paths, each as
a ratio to a floor measured in the same run.

One run:
  1. Floors: bench_sqlite_floor (raw SQLite inserts, WAL, synchronous=FULL,
     one per commit, one thread, in the run's directory) for the paths that
     only journal (no script, in-process), and bench_fork_floor's fork row
     (fork + call + pipe + waitpid from a small process) for the isolated one;
     each measured before the daemon starts and after it stops (step 4),
     and the faster of the two taken.
  2. A real evscriptd in a temporary directory on a loopback port, default
     durability (store sqlite:./evscript.db), max_concurrency 8, three
     integrations: `none` (no script), `inproc` (the test plugin noop,
     execution: in-process) and `iso` (noop, isolated).
  3. Per path: a short warm-up (sequential POSTs), then
     `wrk -t2 -c16 -d<S>s --latency -s load.lua`: POST /connections, a new
     connection id per request; then wait until the store has no event
     pending or claimed and no execution running. Measured: acknowledged
     creations (201) per second of wrk's run; events finished per second
     (scripts: executions finished / (last end - first start); no script:
     events done / (last done - first created)), from the store; POST
     latency p50/p99 (wrk); CPU time per event: the daemon's utime+stime
     plus the zygote's utime+stime+cutime+cstime (it reaps the executors),
     from /proc, before the wrk run and after the wait; and, when `perf` is
     installed, context switches per event: `perf stat -e context-switches`
     on the daemon and its zygote (their threads and the executors they
     fork) over the same span.
  4. Stop the daemon, open its database read-only and check exactly once:
     every acknowledged creation has exactly one event, done, and (scripts)
     exactly one execution, succeeded; no connection has two. Otherwise a
     FAILED line, the work directory is kept, and the exit status is 1.

Prints one Markdown table; with --runs R, medians over the runs and each
ratio's range. Standard library only."""
import argparse
import json
import os
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

SECRET = "bench-load-secret-0123456789"
WARMUP = 20          # sequential POSTs per path before wrk
MAX_CONCURRENCY = 8
SQLITE_FLOOR_N = 5000
FORK_FLOOR_N = 2000

# (integration, what the row says, floor)
PATHS = (
    ("none", "POST /connections, no script (API + store only)", "sqlite"),
    ("inproc", "in-process script (noop)", "sqlite"),
    ("iso", "isolated script (noop)", "fork"),
)
FLOOR_NAMES = {
    "sqlite": "raw SQLite",
    "fork": "fork floor",
}


def log(msg):
    print("load: " + msg, file=sys.stderr, flush=True)


class Failed(Exception):
    """The benchmark could not run, or exactly once did not hold."""


# ---------------------------------------------------------------------------
# Floors.

def floor_rows(build, workdir):
    """Runs both floor programs; returns {"sqlite": row, "fork": row}."""
    rows = {}
    os.sync()  # not the write-back of what ran before (the daemon's store and log)
    for kind, argv in (
            ("sqlite-floor", [os.path.join(build, "tests/bench/bench_sqlite_floor"),
                              str(SQLITE_FLOOR_N), workdir]),
            ("fork-floor", [os.path.join(build, "tests/bench/bench_fork_floor"),
                            str(FORK_FLOOR_N)])):
        out = subprocess.run(argv, check=True, stdout=subprocess.PIPE, text=True).stdout
        for line in out.splitlines():
            if line.startswith("{"):
                row = json.loads(line)
                if row.get("kind") == kind:
                    rows[kind.split("-")[0]] = row
        if kind.split("-")[0] not in rows:
            raise Failed(f"{argv[0]} printed no {kind} row")
    return rows


# ---------------------------------------------------------------------------
# The daemon.

class SwitchCounter:
    """`perf stat -e context-switches` on some processes and what they
    start, from start() to stop(); None when perf is missing or fails."""

    def __init__(self, workdir, name):
        self.out = os.path.join(workdir, f"{name}.perf")
        self.proc = None

    def start(self, pids):
        if not shutil.which("perf"):
            return
        self.proc = subprocess.Popen(
            ["perf", "stat", "-x", ",", "-e", "context-switches", "-o", self.out,
             "-p", ",".join(str(p) for p in pids)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.2)  # attached before the work starts

    def stop(self):
        if not self.proc:
            return None
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return None
        try:
            with open(self.out) as f:
                for line in f:
                    fields = line.strip().split(",")
                    if len(fields) > 2 and fields[2] == "context-switches" and fields[0].isdigit():
                        return int(fields[0])
        except OSError:
            pass
        return None


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_times(pid):
    """(utime, stime, cutime, cstime) of pid in clock ticks, or None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # fields[0] is field 3 (state): utime..cstime are fields 14..17
    return tuple(int(x) for x in fields[11:15])


def children_named(ppid, comm):
    pids = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                head, tail = f.read().rsplit(")", 1)
        except (FileNotFoundError, ProcessLookupError):
            continue
        if head.split("(", 1)[1] == comm and int(tail.split()[1]) == ppid:
            pids.append(int(name))
    return pids


class Daemon:
    """One evscriptd in workdir: the config, the noop plugin, its log."""

    def __init__(self, build, source, workdir):
        self.dir = workdir
        self.db = os.path.join(workdir, "evscript.db")
        self.exe = os.path.join(build, "runtime/daemon/evscriptd")
        plugins = os.path.join(workdir, "plugins.d")
        os.makedirs(plugins)
        for f in ("noop.so", "noop.so.minisig"):
            shutil.copyfile(os.path.join(build, "tests/plugins.d", f), os.path.join(plugins, f))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        script = {"on-events": {"post-connection-creation": ["noop"]}}
        cfg = {
            "listen": f"127.0.0.1:{self.port}",
            "secret_key": SECRET,
            "store": "sqlite:./evscript.db",
            "plugin_dir": "./plugins.d",
            "trusted_keys_dir": os.path.join(build, "dev-keys/trusted"),
            "providers": os.path.join(source, "providers/providers.yaml"),
            "max_concurrency": MAX_CONCURRENCY,
            "integrations": {
                "none": {"provider": "local-test"},
                "inproc": dict(script, provider="local-test", execution="in-process"),
                "iso": dict(script, provider="local-test"),
            },
        }
        self.config = os.path.join(workdir, "evscript.yaml")
        with open(self.config, "w") as f:
            json.dump(cfg, f, indent=2)  # JSON is YAML
        self.log_path = os.path.join(workdir, "evscriptd.log")
        self.proc = None

    def start(self):
        env = dict(os.environ)
        env.pop("EVSCRIPT_SECRET_KEY", None)
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([self.exe, "--config", self.config], cwd=self.dir,
                                     stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                raise Failed(f"evscriptd exited with {self.proc.returncode}; "
                             f"log: {self.log_path}")
            try:
                if self.request("GET", "/healthz", timeout=1)[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise Failed(f"evscriptd did not answer /healthz in 60 s; log: {self.log_path}")
            time.sleep(0.05)

    def stop(self):
        """SIGTERM and wait; returns the exit status."""
        if not self.proc:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(120)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        code, self.proc = self.proc.returncode, None
        return code

    def request(self, method, path, body=None, timeout=30):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method, headers={
            "Authorization": f"Bearer {SECRET}", "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def cpu_ticks(self):
        """Daemon utime+stime plus each zygote's utime+stime+cutime+cstime."""
        t = proc_times(self.proc.pid)
        total = t[0] + t[1] if t else 0
        zygotes = children_named(self.proc.pid, "evscript-zygote")
        for z in zygotes:
            zt = proc_times(z)
            total += sum(zt) if zt else 0
        return total, tuple(sorted(zygotes))


# ---------------------------------------------------------------------------
# One path.

def unfinished(db):
    """Events pending or claimed, and executions running, read-only."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        ev = con.execute("SELECT count(*) FROM events WHERE status IN ('pending','claimed')")
        ex = con.execute("SELECT count(*) FROM executions WHERE status = 'running'")
        return ev.fetchone()[0] + ex.fetchone()[0]
    finally:
        con.close()


def wait_idle(daemon, timeout):
    deadline = time.monotonic() + timeout
    while True:
        if daemon.proc.poll() is not None:
            raise Failed(f"evscriptd exited with {daemon.proc.returncode} during the run; "
                         f"log: {daemon.log_path}")
        left = unfinished(daemon.db)
        if left == 0:
            return
        if time.monotonic() > deadline:
            log(f"still {left} events/executions unfinished after {timeout:.0f} s; going on")
            return
        time.sleep(0.05)


def warm_up(daemon, integration, prefix):
    ids = []
    for i in range(WARMUP):
        cid = f"{prefix}-{i}"
        status, body = daemon.request("POST", "/connections", {
            "provider_config_key": integration, "connection_id": cid,
            "credentials": {"type": "API_KEY", "apiKey": "k"}})
        if status != 201:
            raise Failed(f"warm-up POST /connections ({integration}) gave {status}: "
                         f"{body[:200]!r}; log: {daemon.log_path}")
        ids.append(cid)
    return ids


def drive(daemon, integration, prefix, args, lua, workdir):
    """wrk on one path; returns its EVS_LOAD summary with the acked ids."""
    ids_file = os.path.join(workdir, f"{prefix}.acked")
    env = dict(os.environ, EVS_LOAD_SECRET=SECRET, EVS_LOAD_INTEGRATION=integration,
               EVS_LOAD_PREFIX=prefix, EVS_LOAD_IDS=ids_file)
    threads = min(2, args.connections)
    argv = ["wrk", f"-t{threads}", f"-c{args.connections}", f"-d{args.duration}s",
            "--timeout", "30s", "--latency", "-s", lua, daemon.url]
    p = subprocess.run(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    with open(os.path.join(workdir, f"{prefix}.wrk"), "w") as f:
        f.write(p.stdout)
    summary = None
    for line in p.stdout.splitlines():
        if line.startswith("EVS_LOAD "):
            summary = json.loads(line[len("EVS_LOAD "):])
    if p.returncode != 0 or summary is None:
        raise Failed(f"wrk failed (status {p.returncode}):\n{p.stdout}")
    with open(ids_file) as f:
        summary["acked"] = [line.strip() for line in f if line.strip()]
    if len(summary["acked"]) != summary["created"]:
        raise Failed(f"wrk counted {summary['created']} 201 replies but wrote "
                     f"{len(summary['acked'])} ids")
    return summary


def finished_rate(con, integration, prefix):
    """(count, per second) of what finished on this path, from the store."""
    like = prefix + "-%"
    if integration == "none":
        n, t0, t1 = con.execute(
            "SELECT count(*), min(created_at), max(finished_at) FROM events"
            " WHERE provider_config_key = ? AND connection_id LIKE ? AND status = 'done'",
            (integration, like)).fetchone()
    else:
        n, t0, t1 = con.execute(
            "SELECT count(*), min(started_at), max(ended_at) FROM executions"
            " WHERE provider_config_key = ? AND connection_id LIKE ? AND ended_at IS NOT NULL",
            (integration, like)).fetchone()
    if not n or t1 is None or t1 <= t0:
        return n or 0, 0.0
    return n, n / ((t1 - t0) / 1000.0)


def exactly_once(con, integration, acked):
    """Problems with exactly once on one path (an empty list when it holds)."""
    events = {}
    for cid, n, done in con.execute(
            "SELECT connection_id, count(*), sum(status = 'done') FROM events"
            " WHERE provider_config_key = ? AND type = 'post-connection-creation'"
            " GROUP BY connection_id", (integration,)):
        events[cid] = (n, done)
    execs = {}
    for cid, n, ok in con.execute(
            "SELECT connection_id, count(*), sum(status = 'succeeded') FROM executions"
            " WHERE provider_config_key = ? GROUP BY connection_id", (integration,)):
        execs[cid] = (n, ok)
    scripts = integration != "none"
    problems = []

    def report(what, ids):
        if ids:
            problems.append(f"{len(ids)} of {len(acked)} acknowledged creation(s) {what} "
                            f"(e.g. {', '.join(sorted(ids)[:3])})")

    report("have no event", [c for c in acked if c not in events])
    report("have an event not done", [c for c in acked if c in events and events[c][1] < events[c][0]])
    if scripts:
        report("have no execution", [c for c in acked if c not in execs])
        report("have an execution that did not succeed",
               [c for c in acked if c in execs and execs[c][1] < execs[c][0]])
    dup_events = [c for c, (n, _) in events.items() if n > 1]
    dup_execs = [c for c, (n, _) in execs.items() if n > 1]
    if dup_events:
        problems.append(f"{len(dup_events)} connection(s) with more than one event "
                        f"(e.g. {', '.join(sorted(dup_events)[:3])})")
    if dup_execs:
        problems.append(f"{len(dup_execs)} connection(s) with more than one execution "
                        f"(e.g. {', '.join(sorted(dup_execs)[:3])})")
    if not scripts and execs:
        problems.append(f"{len(execs)} connection(s) of an integration without scripts "
                        "with executions")
    return problems


# ---------------------------------------------------------------------------
# One run, all paths.

def one_run(run, args, lua):
    workdir = tempfile.mkdtemp(prefix="evs-load-")
    keep = args.keep
    try:
        before = floor_rows(args.build_dir, workdir)
        daemon = Daemon(args.build_dir, args.source, workdir)
        daemon.start()
        paths = {}
        try:
            for integration, _, _ in PATHS:
                # the ids of the warm-up and of wrk's run differ in their
                # prefix: only wrk's run is measured, both are checked
                prefix = f"r{run}-{integration}-load"
                acked = warm_up(daemon, integration, f"r{run}-{integration}-warm")
                wait_idle(daemon, 60)
                cpu0, zyg0 = daemon.cpu_ticks()
                switches = SwitchCounter(workdir, prefix)
                switches.start((daemon.proc.pid,) + zyg0)
                s = drive(daemon, integration, prefix, args, lua, workdir)
                wait_idle(daemon, 120 + 20 * args.duration)
                s["switches"] = switches.stop()
                cpu1, zyg1 = daemon.cpu_ticks()
                if zyg0 != zyg1:
                    log(f"run {run}, {integration}: the zygote changed ({zyg0} -> {zyg1}): "
                        "its CPU time is not all counted")
                s["acked"] = acked + s["acked"]
                s["cpu_s"] = (cpu1 - cpu0) / os.sysconf("SC_CLK_TCK")
                s["prefix"] = prefix
                paths[integration] = s
        finally:
            code = daemon.stop()
        if code != 0:
            keep = True
            raise Failed(f"evscriptd exited with status {code} on SIGTERM; log: {daemon.log_path}")
        # the floors again, now that the daemon is gone; the faster of the
        # two counts: a floor slowed down by a neighbour would flatter the
        # ratios, and the goals are "at least X of the floor"
        after = floor_rows(args.build_dir, workdir)
        floors = {k: max(before[k], after[k], key=lambda r: r["per_s"]) for k in before}
        log(f"run {run}: floors (before, after the daemon): raw SQLite "
            f"{before['sqlite']['per_s']:.0f}, {after['sqlite']['per_s']:.0f} inserts/s; fork "
            f"{before['fork']['per_s']:.0f}, {after['fork']['per_s']:.0f}/s")

        con = sqlite3.connect(f"file:{daemon.db}?mode=ro", uri=True)
        try:
            problems = []
            for integration, _, _ in PATHS:
                s = paths[integration]
                s["finished"], s["per_s"] = finished_rate(con, integration, s["prefix"])
                s["ack_per_s"] = s["created"] / (s["duration_us"] / 1e6)
                s["cpu_us"] = s["cpu_s"] * 1e6 / s["finished"] if s["finished"] else 0.0
                s["cs"] = (s["switches"] / s["finished"]
                           if s["switches"] is not None and s["finished"] else None)
                problems += [f"run {run}, path {integration}: {p}"
                             for p in exactly_once(con, integration, s["acked"])]
                log(f"run {run}, {integration}: {s['created']} acknowledged "
                    f"({s['ack_per_s']:.0f}/s, {s['other']} other replies, errors "
                    f"{s['errors']}), {s['finished']} finished ({s['per_s']:.0f}/s), "
                    f"p50 {s['p50_us'] / 1000:.2f} ms, p99 {s['p99_us'] / 1000:.2f} ms, "
                    f"CPU {s['cpu_us']:.0f} µs/event" +
                    (f", {s['cs']:.1f} context switches/event" if s["cs"] is not None else ""))
        finally:
            con.close()
        if problems:
            keep = True
            for p in problems:
                print(f"FAILED: exactly once: {p}", flush=True)
            raise Failed(f"exactly once did not hold; the run's directory is kept: {workdir}")
        log(f"run {run}: exactly once holds on every path "
            f"({sum(len(paths[i]['acked']) for i, _, _ in PATHS)} acknowledged creations)")
        return {"floors": floors, "paths": paths}
    except Failed:
        keep = True
        raise
    finally:
        if keep:
            log(f"run {run}: kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


# ---------------------------------------------------------------------------
# The table.

def num(x):
    return f"{x:,.0f}"


def spread(values, fmt):
    """The median, and the range when there are several values."""
    med = statistics.median(values)
    if len(values) == 1:
        return fmt(med)
    return f"{fmt(med)} ({fmt(min(values))}-{fmt(max(values))})"


def table(runs, args):
    out = ["| path | events finished/s | against its floor | acknowledged/s "
           "| POST p50 ms | POST p99 ms | CPU µs/event | switches/event |",
           "|---|---:|---|---:|---:|---:|---:|---:|"]
    floor = {k: [r["floors"][k]["per_s"] for r in runs] for k in FLOOR_NAMES}
    for integration, what, fk in PATHS:
        rows = [r["paths"][integration] for r in runs]
        ratios = [row["per_s"] / r["floors"][fk]["per_s"] for row, r in zip(rows, runs)]
        cs = [x["cs"] for x in rows if x["cs"] is not None]
        out.append("| %s | %s | %s %s | %s | %s | %s | %s | %s |" % (
            what,
            spread([x["per_s"] for x in rows], num),
            spread(ratios, lambda v: f"{v:.2f}x"), FLOOR_NAMES[fk],
            spread([x["ack_per_s"] for x in rows], num),
            spread([x["p50_us"] / 1000 for x in rows], lambda v: f"{v:.2f}"),
            spread([x["p99_us"] / 1000 for x in rows], lambda v: f"{v:.2f}"),
            spread([x["cpu_us"] for x in rows], num),
            spread(cs, lambda v: f"{v:.1f}") if cs else "n/a"))
    out.append("| floor: raw SQLite (WAL, synchronous=FULL, one INSERT per commit, one thread) "
               "| %s | 1.00x (floor) | | | | | |" % spread(floor["sqlite"], num))
    out.append("| floor: fork + call + pipe + waitpid (small process) "
               "| %s | 1.00x (floor) | | | | | |" % spread(floor["fork"], num))
    print("\n".join(out))
    r = len(runs)
    print(f"\n`wrk -t{min(2, args.connections)} -c{args.connections} -d{args.duration}s`, "
          f"POST /connections with a new connection id per request; default durability; "
          f"max_concurrency {MAX_CONCURRENCY}; {os.cpu_count()} CPUs; each floor the faster "
          f"of two measurements, before and after the daemon. "
          + (f"{r} runs: medians, (min-max) over the runs." if r > 1 else "1 run."))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build-dir", required=True)
    ap.add_argument("--source", required=True)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--keep", action="store_true", help="keep each run's directory")
    args = ap.parse_args()
    if args.duration < 1 or args.connections < 1 or args.runs < 1:
        ap.error("--duration, --connections and --runs must be at least 1")
    if not shutil.which("wrk"):
        sys.exit("load: wrk not found (Debian package wrk; scripts/install-deps.sh installs it)")
    for p in ("runtime/daemon/evscriptd", "runtime/daemon/evscript-zygote",
              "tests/plugins.d/noop.so", "tests/bench/bench_sqlite_floor",
              "tests/bench/bench_fork_floor"):
        if not os.path.exists(os.path.join(args.build_dir, p)):
            sys.exit(f"load: {os.path.join(args.build_dir, p)} is not built")
    lua = os.path.join(os.path.dirname(os.path.abspath(__file__)), "load.lua")
    log(f"{args.runs} run(s) of {args.duration} s per path, {args.connections} connections; "
        f"{os.cpu_count()} CPUs; {os.uname().sysname} {os.uname().release}")
    runs = []
    try:
        for run in range(1, args.runs + 1):
            runs.append(one_run(run, args, lua))
    except Failed as e:
        print(f"FAILED: {e}", flush=True)
        return 1
    table(runs, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
