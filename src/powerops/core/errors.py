"""The failures powerops names in words. The CLI prints any of them as one line
(`powerops: error: ...`, the traceback with `-v`) and exits with the status of its kind."""

from __future__ import annotations


class PowerOpsError(Exception):
    """Something went wrong that the message explains: exit status 1."""

    exit_status = 1


class UsageError(PowerOpsError):
    """A bad argument or setting the user can correct from the message: exit status 2."""

    exit_status = 2


class BusyError(PowerOpsError):
    """Another writer held the workspace too long; trying again later may succeed: 75."""

    exit_status = 75  # EX_TEMPFAIL (sysexits.h)
