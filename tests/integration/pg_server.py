"""A private PostgreSQL server for the tests: initdb in a directory of its
own, a free loopback port, trust authentication for one role on 127.0.0.1
only. When run as root, initdb and the server run as `nobody`.

  python3 pg_server.py start DIR   initialises DIR (if needed) and starts the server;
                                   DIR/url then holds postgresql://evs@127.0.0.1:PORT
  python3 pg_server.py stop DIR    stops it (fast shutdown) and removes DIR

harness.py uses the same functions (restart, for the database-restart test;
create_database, for a fresh database per daemon).

The Debian packages are `postgresql` (the server, in /usr/lib/postgresql/N/bin)
and `postgresql-client` (psql); scripts/install-deps.sh installs both.
"""

import glob
import os
import pwd
import shutil
import socket
import subprocess
import sys
import time

ROLE = "evs"


def bindir():
    for d in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if os.path.exists(os.path.join(d, "postgres")):
            return d
    raise RuntimeError("PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin "
                       "(Debian package postgresql; scripts/install-deps.sh installs it)")


def as_user():
    """The command prefix that runs the server as an unprivileged user when we are root."""
    return ["runuser", "-u", "nobody", "--"] if os.geteuid() == 0 else []


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _chown(path):
    if os.geteuid() == 0:
        nobody = pwd.getpwnam("nobody")
        for root, dirs, files in os.walk(path):
            os.chown(root, nobody.pw_uid, nobody.pw_gid)
            for f in files:
                os.chown(os.path.join(root, f), nobody.pw_uid, nobody.pw_gid)


def url(d):
    with open(os.path.join(d, "url")) as f:
        return f.read().strip()


def _pg_ctl(d, *args):
    data = os.path.join(d, "data")
    subprocess.run(as_user() + [os.path.join(bindir(), "pg_ctl"), "-D", data, "-w", "-t", "60", *args],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)


def start(d):
    data = os.path.join(d, "data")
    os.makedirs(d, exist_ok=True)
    os.chmod(d, 0o755)
    if not os.path.exists(os.path.join(data, "PG_VERSION")):
        os.makedirs(data, exist_ok=True)
        os.chmod(data, 0o700)
        _chown(d)
        subprocess.run(as_user() + [os.path.join(bindir(), "initdb"), "-D", data, "-U", ROLE,
                                    "-A", "trust", "--no-sync", "-E", "UTF8", "--locale=C"],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        port = free_port()
        with open(os.path.join(data, "postgresql.auto.conf"), "a") as f:
            f.write(f"listen_addresses = '127.0.0.1'\nport = {port}\n"
                    f"unix_socket_directories = '{d}'\nmax_connections = 300\n"
                    "shared_buffers = 32MB\nfsync = on\n")
        with open(os.path.join(d, "url"), "w") as f:
            f.write(f"postgresql://{ROLE}@127.0.0.1:{port}/postgres\n")
        _chown(d)
    _pg_ctl(d, "-l", os.path.join(d, "server.log"), "start")


def stop(d, remove=True):
    if os.path.exists(os.path.join(d, "data", "postmaster.pid")):
        _pg_ctl(d, "-m", "fast", "stop")
    if remove:
        shutil.rmtree(d, ignore_errors=True)


def restart(d):
    """Stops and starts the server (fast: clients are disconnected)."""
    _pg_ctl(d, "-m", "fast", "-l", os.path.join(d, "server.log"), "restart")


def psql(d, sql, db="postgres"):
    base = url(d).rsplit("/", 1)[0]
    r = subprocess.run(["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", f"{base}/{db}", "-c", sql],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"psql {sql!r}: {r.stderr.strip()}")
    return r.stdout.strip()


def create_database(d, name):
    """A fresh database (an empty one of that name if it exists); its URL."""
    if psql(d, f"SELECT 1 FROM pg_database WHERE datname = '{name}'") != "1":
        psql(d, f'CREATE DATABASE "{name}"')
    return url(d).rsplit("/", 1)[0] + "/" + name


def drop_database(d, name):
    psql(d, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("start", "stop"):
        sys.exit("usage: pg_server.py start|stop DIR")
    if sys.argv[1] == "start":
        stop(sys.argv[2])  # what a previous run left
        start(sys.argv[2])
        print(url(sys.argv[2]))
    else:
        stop(sys.argv[2])
