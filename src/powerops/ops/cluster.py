"""The servers of the `cluster` profile, run on this machine for `make test-cluster`.

PostgreSQL (Airflow's metadata database and MLflow's backend store), Redis (Celery's broker)
and OpenSSH's server (SFTP, the shared DVC remote) come from Debian's packages
(`scripts/cluster_packages.sh` installs them when they are missing); MLflow's tracking
server comes from the environment. Each runs from a
directory of its own, bound to 127.0.0.1 on a port the caller picks, as a child process of
the caller, and is stopped by its PID: nothing is installed as a service and nothing outside
that directory changes. PostgreSQL refuses to run as root, so when the caller is root it runs
as the `postgres` user the package creates.

Secrets: the databases accept password logins for their own users only from loopback, and
SFTP only the one client key; passwords and keys are generated per run and handed to the
clients through the environment or files in the run's directory, never the repository.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from powerops.core.errors import PowerOpsError
from powerops.ops.stack import StackError, wait_healthy

POSTGRES_BIN = Path("/usr/lib/postgresql/15/bin")
START_TIMEOUT_S = 60
STOP_TIMEOUT_S = 30


class ClusterError(PowerOpsError):
    """A server is missing, failed to start or to stop."""


@dataclass(frozen=True)
class Server:
    """One running server: its process, port and log."""

    name: str
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_for_port(server: Server, timeout: float = START_TIMEOUT_S) -> None:
    """Return once the server accepts connections; raise with its log if it dies or stalls."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            break
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", server.port), 1):
            return
        time.sleep(0.2)
    tail = server.log.read_text(errors="replace")[-2000:] if server.log.exists() else ""
    raise ClusterError(f"{server.name} did not start on port {server.port}:\n{tail}")


def _as_postgres(command: list[str]) -> list[str]:
    """PostgreSQL refuses root: run as the package's `postgres` user when we are root."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


def _spawn(
    name: str, command: list[str], port: int, log: Path, env: dict[str, str] | None = None
) -> Server:
    """Start a server in its own process group, its output in `log`; return once it listens
    (port 0: at once, for a process that listens on nothing)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        process = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    server = Server(name, process, port, log)
    if port:
        wait_for_port(server)
    return server


def start_postgres(root: Path, port: int, databases: dict[str, str]) -> Server:
    """A fresh PostgreSQL cluster in `root`, with a user and a database of the same name for
    each of `databases` (name -> password)."""
    if not (POSTGRES_BIN / "postgres").exists():
        raise ClusterError(f"no PostgreSQL in {POSTGRES_BIN}: run scripts/cluster_packages.sh")
    data = root / "data"
    root.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    subprocess.run(
        _as_postgres(
            [
                str(POSTGRES_BIN / "initdb"),
                "-D",
                str(data),
                "-U",
                "postgres",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "--no-sync",
            ]
        ),
        check=True,
        capture_output=True,
    )
    server = _run_postgres(root, port)
    for name, password in databases.items():
        user = f"CREATE USER {name} PASSWORD '{password}'"
        psql = [str(POSTGRES_BIN / "psql"), "-h", str(root), "-p", str(port), "-U", "postgres"]
        sql = ["-c", user, "-c", f"CREATE DATABASE {name} OWNER {name}"]  # one transaction each
        done = subprocess.run(
            _as_postgres([*psql, "-v", "ON_ERROR_STOP=1", *sql]), capture_output=True
        )
        if done.returncode:
            stop(server)
            raise ClusterError(f"creating database {name}: {done.stderr.decode()[-500:]}")
    return server


def _run_postgres(root: Path, port: int) -> Server:
    command = [str(POSTGRES_BIN / "postgres"), "-D", str(root / "data"), "-p", str(port)]
    command += ["-h", "127.0.0.1", "-k", str(root), "-c", "fsync=off"]
    return _spawn("postgresql", _as_postgres(command), port, root / "postgres.log")


def restart_postgres(server: Server, down_s: float = 0) -> Server:
    """Stop PostgreSQL (a fast shutdown: open connections are cut), leave it down `down_s`
    seconds, and start it again on the same port and data, as a restart or failover would."""
    root = server.log.parent
    pg_ctl = [str(POSTGRES_BIN / "pg_ctl"), "-D", str(root / "data"), "stop", "-m", "fast", "-w"]
    subprocess.run(_as_postgres(pg_ctl), check=True, capture_output=True)
    server.process.wait(timeout=STOP_TIMEOUT_S)
    time.sleep(down_s)
    return _run_postgres(root, server.port)


def start_redis(root: Path, port: int) -> Server:
    """Redis bound to loopback, no persistence, in `root`."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise ClusterError("no redis-server: run scripts/cluster_packages.sh")
    root.mkdir(parents=True, exist_ok=True)
    command = [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(root)]
    command += ["--save", "", "--appendonly", "no", "--daemonize", "no"]
    server = _spawn("redis", command, port, root / "redis.log")
    return server


@dataclass(frozen=True)
class Sftp:
    """An SFTP server for the shared DVC remote, and what a client needs to reach it."""

    server: Server
    url: str  # ssh://root@127.0.0.1:PORT/<directory>
    directory: Path  # the remote's directory on the server
    keyfile: Path  # the client's private key


def start_sftp(root: Path, port: int) -> Sftp:
    """OpenSSH's server on loopback, for SFTP to a directory in `root`: its own host key, one
    client key, no password logins.

    DVC's SSH remote does not check the server's host key: sshfs connects with
    `known_hosts=None` and dvc-ssh has no setting to change it (seen here: a wrong key in
    known_hosts changed nothing). Use it on a trusted network only; docs/deploy.md."""
    sshd = Path("/usr/sbin/sshd")
    if not sshd.exists() or shutil.which("ssh-keygen") is None:
        raise ClusterError("no OpenSSH server: run scripts/cluster_packages.sh")
    root.mkdir(parents=True, exist_ok=True)
    keys = {}
    for name in ("host_key", "client_key"):
        keys[name] = root / name
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(keys[name])], check=True
        )
    authorized = root / "authorized_keys"
    shutil.copy(root / "client_key.pub", authorized)
    authorized.chmod(0o600)
    user = "root" if os.geteuid() == 0 else os.environ.get("USER", "root")
    config = root / "sshd_config"
    config.write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {keys['host_key']}\n"
        f"AuthorizedKeysFile {authorized}\nPasswordAuthentication no\n"
        f"KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n"
        f"PidFile {root / 'sshd.pid'}\nAllowUsers {user}\nSubsystem sftp internal-sftp\n"
    )
    Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege-separation directory
    command = [str(sshd), "-D", "-e", "-f", str(config)]
    server = _spawn("sshd", command, port, root / "sshd.log")
    remote = root / "dvc-remote"
    remote.mkdir(exist_ok=True)
    url = f"ssh://{user}@127.0.0.1:{port}{remote}"
    return Sftp(server, url, remote, keys["client_key"])


def start_mlflow(root: Path, port: int, backend_store_uri: str) -> Server:
    """An MLflow tracking server on `backend_store_uri` that also serves the artifacts, stored
    in `root` (`--serve-artifacts`: clients upload and download them over HTTP, so no disk is
    shared); returns once /health answers."""
    root.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri"]
    command += [backend_store_uri, "--artifacts-destination", str(root / "artifacts")]
    command += ["--serve-artifacts", "--host", "127.0.0.1", "--port", str(port)]
    quiet = os.environ | {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}
    # No job runner: it starts eight more processes (huey consumers) that powerops never uses.
    quiet["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
    server = _spawn("mlflow", [*command, "--workers", "1"], port, root / "mlflow.log", quiet)
    try:
        wait_healthy(f"http://127.0.0.1:{port}/health", START_TIMEOUT_S, server.pid)
    except StackError as exc:
        stop(server)
        raise ClusterError(f"{exc}:\n{server.log.read_text()[-2000:]}") from None
    return server


def start_process(name: str, command: list[str], log: Path, env: dict[str, str]) -> Server:
    """A process that listens on no port of ours (an Airflow scheduler or Celery worker)."""
    return _spawn(name, command, 0, log, env)


def worker_hostname() -> str:
    """Airflow's `[core] hostname_callable` for the cluster test: each Celery worker stands
    for a host, named by POWEROPS_WORKER, so task instances record which worker ran them."""
    return os.environ.get("POWEROPS_WORKER") or socket.getfqdn()


def kill(server: Server) -> None:
    """SIGKILL a process and everything under it, as a host that loses power would.

    Airflow's task supervisor puts each task in a process group of its own, so killing the
    worker's group alone would leave the task running: every descendant's group is killed."""
    import psutil

    groups = {server.pid}
    with contextlib.suppress(psutil.NoSuchProcess):
        for child in psutil.Process(server.pid).children(recursive=True):
            with contextlib.suppress(ProcessLookupError):
                groups.add(os.getpgid(child.pid))
    for group in groups:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGKILL)
    server.process.wait()


def stop(server: Server) -> None:
    """SIGTERM to the server's process group, SIGKILL after STOP_TIMEOUT_S."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.pid, signal.SIGTERM)
    try:
        server.process.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGKILL)
        server.process.wait()


def password() -> str:
    return secrets.token_urlsafe(18)
