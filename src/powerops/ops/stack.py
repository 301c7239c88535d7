"""The embedded stack for people who use the UIs: Airflow's components and the MLflow UI.

`up` starts both in their own process groups, every port bound to 127.0.0.1, with Airflow's
parallelism sized for a small machine, and records their PIDs in `.run/stack.json`; `down`
stops every process group it started (SIGTERM, then SIGKILL after a grace period), so nothing
is left behind. Logs go to `.run/logs/`. No credentials are stored in the repository: `up`
generates the admin password into AIRFLOW_HOME on first start, readable by its owner only.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import secrets
import shlex
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

from powerops.core.config import Params
from powerops.core.errors import PowerOpsError

PASSWORD_FILE = "simple_auth_manager_passwords.json.generated"

# What `airflow standalone` runs, without its two log servers: they listen on every interface
# (airflow/utils/serve_logs/core.py binds host "", no setting changes it) and only a flag turns
# them off. The API server reads task logs from AIRFLOW_HOME/logs, on this machine, instead.
AIRFLOW_COMPONENTS = (
    ("scheduler", "--skip-serve-logs"),
    ("dag-processor",),
    ("triggerer", "--skip-serve-logs"),
    ("api-server",),
)


class StackError(PowerOpsError):
    """The stack is already running, failed to start, or could not be stopped."""


@dataclass(frozen=True)
class Stack:
    airflow_pid: int
    mlflow_pid: int
    airflow_url: str
    mlflow_url: str
    airflow_home: str

    @property
    def password_file(self) -> Path:
        return Path(self.airflow_home) / PASSWORD_FILE


def airflow_home(params: Params) -> Path:
    """AIRFLOW_HOME of `make up` and of `make demo`: one database, so the UI shows the demo's
    runs."""
    return params.run_dir / "airflow"


def state_file(params: Params) -> Path:
    return params.run_dir / "stack.json"


def airflow_env(params: Params, home: Path, port: int) -> dict[str, str]:
    """Environment for every Airflow process of this workspace."""
    return {
        # the environment's commands first, for anything that starts `airflow` or `powerops`
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(params.resolve("dags")),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(params.resolve("plugins")),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        # what `airflow standalone` forced, whatever a cluster host's environment says
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__AUTH_MANAGER": (
            "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
        ),
        "AIRFLOW__CORE__PARALLELISM": str(params.stack.parallelism),
        "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": str(params.stack.parallelism),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / PASSWORD_FILE),
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__SCHEDULER__STANDALONE_DAG_PROCESSOR": "True",
        "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
        "POWEROPS_WORKSPACE": str(params.root),
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "true",
        "GX_ANALYTICS_ENABLED": "False",
        "DVC_NO_ANALYTICS": "1",
    }


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def status(params: Params) -> Stack | None:
    """The running stack, or None (a state file whose processes are gone is removed)."""
    path = state_file(params)
    if not path.is_file():
        return None
    stack = Stack(**json.loads(path.read_text()))
    if _alive(stack.airflow_pid) or _alive(stack.mlflow_pid):
        return stack
    path.unlink()
    return None


def _spawn(command: list[str], env: dict[str, str], log: Path, cwd: Path) -> int:
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as handle:
        process = subprocess.Popen(
            command,
            cwd=cwd,
            env={**os.environ, **env},
            stdout=handle,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: `down` stops it and its children
        )
    return process.pid


def _bin(name: str) -> str:
    return str(Path(sys.executable).parent / name)


def wait_healthy(url: str, timeout: float, pid: int) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            raise StackError(f"the process serving {url} exited; see .run/logs/")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(1)
    raise StackError(f"{url} was not healthy after {timeout:.0f} s; see .run/logs/")


def up(
    params: Params,
    airflow_port: int | None = None,
    mlflow_port: int | None = None,
    timeout: float = 180,
) -> Stack:
    """Start Airflow's components and the MLflow UI; wait until both answer."""
    running = status(params)
    if running is not None:
        raise StackError(
            f"the stack is already running (Airflow {running.airflow_url}, MLflow "
            f"{running.mlflow_url}); `make down` stops it"
        )
    airflow_port = airflow_port or params.stack.airflow_port
    mlflow_port = mlflow_port or params.stack.mlflow_port
    home = airflow_home(params)
    logs = params.run_dir / "logs"
    env = airflow_env(params, home, airflow_port)
    _prepare_airflow(params, env)
    write_password(home / PASSWORD_FILE)
    airflow_pid = _spawn(_airflow_command(logs), env, logs / "airflow.log", params.root)
    mlflow_pid = _start_mlflow_ui(params, mlflow_port, logs)
    stack = Stack(
        airflow_pid,
        mlflow_pid,
        f"http://127.0.0.1:{airflow_port}",
        f"http://127.0.0.1:{mlflow_port}",
        str(home),
    )
    state_file(params).write_text(json.dumps(asdict(stack), indent=2))
    try:
        wait_healthy(f"{stack.airflow_url}/api/v2/monitor/health", timeout, airflow_pid)
        wait_healthy(f"{stack.mlflow_url}/health", timeout, mlflow_pid)
    except StackError:
        down(params)
        raise
    return stack


def _prepare_airflow(params: Params, env: dict[str, str]) -> None:
    """Airflow's metadata database, migrated, and the pool the workspace's tasks share."""
    setup = {**os.environ, **env}
    for command in (
        ["db", "migrate"],
        ["pools", "set", "powerops_workspace", "1", "DVC allows one writer"],
    ):
        subprocess.run(
            [_bin("airflow"), *command], env=setup, check=True, capture_output=True, cwd=params.root
        )


def write_password(path: Path) -> None:
    """The admin's password at mode 0600 from the first byte, unless it exists (then 0600 too).

    Airflow's simple auth manager opens it in place ("a+") and keeps a user it finds, so it
    changes neither password nor mode; left to itself, it creates it by the umask (0644).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        path.chmod(0o600)  # one an older `up` left readable
        return
    with os.fdopen(fd, "w") as handle:
        json.dump({"admin": secrets.token_urlsafe(12)}, handle)


def _airflow_command(logs: Path) -> list[str]:
    """One shell, the group's leader, starting each component with its own log and waiting.

    A leader inside the new session is needed: a process outside it cannot join its group.
    """
    airflow = shlex.quote(_bin("airflow"))
    starts = [
        f"{airflow} {' '.join(c)} >> {shlex.quote(str(logs / f'airflow-{c[0]}.log'))} 2>&1 &"
        for c in AIRFLOW_COMPONENTS
    ]
    return ["/bin/sh", "-c", " ".join([*starts, "wait"])]


def _start_mlflow_ui(params: Params, port: int, logs: Path) -> int:
    """The MLflow UI on the workspace's store, one worker, no job runner; its PID."""
    from powerops.model import registry

    registry.client(params)  # create the SQLite store before the UI opens it
    return _spawn(
        [
            _bin("mlflow"),
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
            "--backend-store-uri",
            params.tracking_uri,
        ],
        {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", "MLFLOW_DISABLE_TELEMETRY": "true"},
        logs / "mlflow.log",
        params.root,
    )


def _stop_group(pid: int, grace: float) -> None:
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.5)
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        return


def is_loopback(address: str) -> bool:
    """True for 127.0.0.0/8, ::1 and their IPv4-mapped form (::ffff:127.0.0.1)."""
    ip = ipaddress.ip_address(address)
    # Python 3.11 says False for ::ffff:127.0.0.1, though only loopback reaches it
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped.is_loopback
    return ip.is_loopback


def _decode_address(hex_address: str) -> str:
    """An address of /proc/net/tcp{,6}: 32-bit words in hex, each in the host's byte order."""
    words = [hex_address[i : i + 8] for i in range(0, len(hex_address), 8)]
    packed = b"".join(int(word, 16).to_bytes(4, sys.byteorder) for word in words)
    ip = ipaddress.ip_address(packed)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return f"::ffff:{ip.ipv4_mapped}"  # 3.11 would print ::ffff:7f00:1
    return str(ip)


def _listening_sockets() -> dict[int, tuple[str, int]]:
    """Socket inode -> (address, port) of every TCP socket in state LISTEN (0A)."""
    found: dict[int, tuple[str, int]] = {}
    for table in (Path("/proc/net/tcp"), Path("/proc/net/tcp6")):
        if not table.is_file():  # no IPv6 in this kernel
            continue
        for line in table.read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] != "0A":
                continue
            address, port = fields[1].split(":")
            found[int(fields[9])] = (_decode_address(address), int(port, 16))
    return found


def _group_members(groups: set[int]) -> list[int]:
    """PIDs whose process group is one of `groups`."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # exited while we looked
            continue
        # `pid (comm) state ppid pgrp ...`: comm may hold spaces and parentheses
        if int(stat.rsplit(")", 1)[1].split()[2]) in groups:
            members.append(int(entry.name))
    return members


def _socket_inodes(pid: int) -> set[int]:
    inodes = set()
    with contextlib.suppress(OSError):  # exited, or not ours to read
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:["):
                    inodes.add(int(target[8:-1]))
    return inodes


def listeners(stack: Stack) -> list[tuple[str, int, int]]:
    """(address, port, pid) of every TCP socket listening in the stack's process groups."""
    sockets = _listening_sockets()
    found = {
        (*sockets[inode], pid)
        for pid in _group_members({stack.airflow_pid, stack.mlflow_pid})
        for inode in _socket_inodes(pid)
        if inode in sockets
    }
    return sorted(found)


def down(params: Params, grace: float = 30) -> bool:
    """Stop every process group `up` started; return False if nothing was running."""
    path = state_file(params)
    if not path.is_file():
        return False
    stack = Stack(**json.loads(path.read_text()))
    for pid in (stack.mlflow_pid, stack.airflow_pid):
        _stop_group(pid, grace)
    # Reap the direct children if this process started them (tests do).
    for pid in (stack.mlflow_pid, stack.airflow_pid):
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
    path.unlink()
    return True
