"""The stack's listening sockets, as /proc shows them, and its loopback-only setup: which
addresses `listeners` reports for a process group, the admin password's mode, the log servers."""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from powerops.ops import stack

# A process group of two: the leader listens on 127.0.0.1 (and ::1 when it can), its child on
# every IPv4 interface. Each prints its pid and ports; the child waits for stdin to close.
MEMBER = """
import os, socket, sys
s = socket.socket()
s.bind(("0.0.0.0", 0))
s.listen()
print(os.getpid(), s.getsockname()[1], flush=True)
sys.stdin.read()
"""
LEADER = f"""
import os, socket, subprocess, sys
held = [socket.socket()]
held[0].bind(("127.0.0.1", 0))
try:
    held.append(socket.socket(socket.AF_INET6))
    held[1].bind(("::1", 0))
except OSError:
    held.pop()
for s in held:
    s.listen()
print(os.getpid(), *(s.getsockname()[1] for s in held), flush=True)
subprocess.run([sys.executable, "-c", {MEMBER!r}])
"""


@pytest.fixture
def group() -> Iterator[subprocess.Popen[str]]:
    """A process group in its own session, as `up` starts one."""
    with subprocess.Popen(
        [sys.executable, "-c", LEADER],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    ) as leader:
        try:
            yield leader
        finally:
            os.killpg(leader.pid, signal.SIGKILL)


def test_listeners_finds_every_socket_of_the_group_with_its_address(
    group: subprocess.Popen[str],
) -> None:
    assert group.stdout is not None
    leader, *loopback = (int(n) for n in group.stdout.readline().split())
    member, wildcard = (int(n) for n in group.stdout.readline().split())
    with socket.socket() as outsider:  # this process is no member: not reported
        outsider.bind(("127.0.0.1", 0))
        outsider.listen()
        found = stack.listeners(stack.Stack(leader, leader, "", "", ""))
        assert outsider.getsockname()[1] not in {port for _, port, _ in found}
    expected = {("127.0.0.1", loopback[0], leader), ("0.0.0.0", wildcard, member)}
    if len(loopback) == 2:
        expected.add(("::1", loopback[1], leader))
    assert set(found) == expected
    assert {address: stack.is_loopback(address) for address, _, _ in found} == {
        "127.0.0.1": True,
        "0.0.0.0": False,
    } | ({"::1": True} if len(loopback) == 2 else {})


def test_listeners_of_a_finished_group_is_empty() -> None:
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        text=True,
        capture_output=True,
        check=True,
    )
    gone = int(done.stdout)
    assert stack.listeners(stack.Stack(gone, gone, "", "", "")) == []


@pytest.mark.parametrize(
    ("hex_address", "address"),
    [
        ("0100007F", "127.0.0.1"),
        ("00000000", "0.0.0.0"),
        ("00000000000000000000000001000000", "::1"),
        ("00000000000000000000000000000000", "::"),
        ("0000000000000000FFFF00000100007F", "::ffff:127.0.0.1"),
        ("0000000000000000FFFF00000101A8C0", "::ffff:192.168.1.1"),
    ],
)
def test_proc_net_addresses_decode(hex_address: str, address: str) -> None:
    if sys.byteorder != "little":
        pytest.skip("the samples are /proc/net/tcp lines of a little-endian machine")
    assert stack._decode_address(hex_address) == address


@pytest.mark.parametrize(
    ("address", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.1.2.3", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),
        ("0.0.0.0", False),
        ("::", False),
        ("::ffff:192.168.1.1", False),
        ("10.0.0.5", False),
    ],
)
def test_is_loopback(address: str, loopback: bool) -> None:
    assert stack.is_loopback(address) is loopback


def test_password_file_is_owner_only_from_the_start_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "airflow" / stack.PASSWORD_FILE
    stack.write_password(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    password = json.loads(path.read_text())["admin"]
    assert len(password) >= 16
    stack.write_password(path)  # a second `up` keeps the password
    assert json.loads(path.read_text())["admin"] == password
    path.chmod(0o644)  # as Airflow itself left it before
    stack.write_password(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_no_airflow_component_starts_a_log_server(tmp_path: Path) -> None:
    # Airflow's log servers bind every interface, whatever the configuration: each component
    # that would start one (scheduler, triggerer) must be told not to.
    script = stack._airflow_command(tmp_path)[-1]
    started = [part.split(">>")[0].split()[1:] for part in script.split("&") if "airflow" in part]
    assert sorted(args[0] for args in started) == [
        "api-server",
        "dag-processor",
        "scheduler",
        "triggerer",
    ]
    for args in started:
        assert args[0] not in ("scheduler", "triggerer") or "--skip-serve-logs" in args
    assert "standalone" not in script
