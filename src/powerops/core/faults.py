"""Named fault points, for fault-injection tests of crash consistency and of concurrency.

`crash_point("register.after_version")` does nothing unless an environment variable names
that point:

- `POWEROPS_CRASH_AT=name` kills the process there with SIGKILL, as a power cut or the OOM
  killer would: no `finally`, no flush, no exit handler. `name@N` crashes at its N-th pass.
- `POWEROPS_STALL_AT=name:seconds` sleeps there at every pass, to hold a writer in the middle
  of its work while another process starts (a race made wide on purpose).
- `POWEROPS_FAIL_AT=name` raises `InjectedFault` there at every pass: a bug or a dependency
  failing in a process that must survive it (the server).

tests/faults/ drives every point in a subprocess, reruns the command, and compares the state
with an uninterrupted run's.
"""

from __future__ import annotations

import os
import signal
import time

CRASH_ENV = "POWEROPS_CRASH_AT"
STALL_ENV = "POWEROPS_STALL_AT"
FAIL_ENV = "POWEROPS_FAIL_AT"
_passes: dict[str, int] = {}


class InjectedFault(RuntimeError):
    """Raised where `POWEROPS_FAIL_AT` names the point."""


def crash_point(name: str) -> None:
    """Die (stall, fail) here if `POWEROPS_CRASH_AT` (`_STALL_AT`, `_FAIL_AT`) names this
    point."""
    if os.environ.get(FAIL_ENV) == name:
        raise InjectedFault(f"fault injected at {name}")
    stall = os.environ.get(STALL_ENV)
    if stall and stall.partition(":")[0] == name:
        time.sleep(float(stall.partition(":")[2] or 1))
    wanted = os.environ.get(CRASH_ENV)
    if not wanted:
        return
    point, _, nth = wanted.partition("@")
    if point != name:
        return
    _passes[name] = _passes.get(name, 0) + 1
    if _passes[name] == int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)
