"""Named crash points, for fault-injection tests of crash consistency.

`crash_point("register.after_version")` does nothing unless the environment variable
`POWEROPS_CRASH_AT` names that point; then the process kills itself with SIGKILL on the spot,
as a power cut or the OOM killer would: no `finally`, no flush, no exit handler. Naming a point
as `name@N` crashes at its N-th pass instead of the first. tests/faults/ drives every point in a
subprocess, reruns the command, and compares the state with an uninterrupted run's.
"""

from __future__ import annotations

import os
import signal

ENV = "POWEROPS_CRASH_AT"
_passes: dict[str, int] = {}


def crash_point(name: str) -> None:
    """Die here, by SIGKILL, if `POWEROPS_CRASH_AT` names this point (and pass)."""
    wanted = os.environ.get(ENV)
    if not wanted:
        return
    point, _, nth = wanted.partition("@")
    if point != name:
        return
    _passes[name] = _passes.get(name, 0) + 1
    if _passes[name] == int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)
