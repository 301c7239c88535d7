"""One serving worker's writer of the prediction log (`powerops.serve.predictionlog`).

Every record is written to the worker's journal of its day with one write(2) before the answer
leaves, so a killed worker (SIGKILL, the OOM killer) loses no answered request: what the
kernel took survives the process. `serve.log_fsync` decides when it reaches the disk, which is
what a power cut or a kernel crash can lose: `always` (fsync before the answer: nothing),
`interval` (fsync every `serve.log_flush_seconds`: at most that much), `never` (the kernel's
own writeback, ~30 s on Linux).

A write that fails (a full or unwritable disk) keeps its records in memory, counts
`powerops_prediction_log_write_failures_total`, and is retried every `serve.log_flush_seconds`
into a fresh journal (the failed one may end in a torn line, which readers leave out). Only
beyond `serve.log_max_buffered` held records are the oldest dropped, and counted. When a day
is over, its journal is closed and the worker compacts the day's journals into Parquet.
"""

from __future__ import annotations

import logging
import os
import threading
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from powerops.core.config import Params
from powerops.core.faults import crash_point
from powerops.serve import predictionlog

if TYPE_CHECKING:
    from prometheus_client import Counter, Gauge


class LogMetrics(Protocol):
    """What the journal counts (`powerops.serve.serving.Metrics` has them)."""

    log_failures: Counter
    log_dropped: Counter
    log_held: Gauge


log = logging.getLogger(__name__)

# A day's journal stays open this long after midnight (UTC): a record stamped 23:59:59.999
# may still be on its way to it.
DAY_GRACE = timedelta(seconds=10)


class Journal:
    """The prediction log records of this process, written as they come."""

    def __init__(self, params: Params, metrics: LogMetrics | None = None) -> None:
        self.params = params
        self.metrics = metrics
        self._open: dict[date, tuple[int, Path]] = {}
        self._unsynced: set[date] = set()
        self._held: list[dict[str, Any]] = []  # records a failed write left in memory
        self._lock = threading.Lock()

    @property
    def held(self) -> int:
        return len(self._held)

    def add(self, record: dict[str, Any]) -> None:
        """Write one record; if the log cannot be written, hold it for the next retry."""
        with self._lock:
            if self._held:  # behind records that wait already: the retry writes them all
                self._hold([record])
            else:
                self._hold(self._write([record]))

    def flush(self) -> int:
        """Retry the held records and fsync what is written; return how many are still
        held (0 once the log could be written)."""
        with self._lock:
            if self._held:
                records, self._held = self._held, []
                self._hold(self._write(records))
                if not self._held:
                    log.warning("prediction log written again: %d held records", len(records))
            for day in self._unsynced & self._open.keys():
                try:
                    os.fsync(self._open[day][0])
                except OSError as exc:  # the kernel may have dropped the pages: say so, loudly
                    log.error("fsync of the prediction log failed (%s): records may be lost", exc)
                    if self.metrics:
                        self.metrics.log_failures.inc()
                    self._close(day)
            self._unsynced.clear()
            return len(self._held)

    def follow(self, stop: threading.Event) -> None:
        """Every `serve.log_flush_seconds`: retry, fsync, and at a day's end close its journal
        and compact the day."""
        while not stop.wait(self.params.serve.log_flush_seconds):
            self.flush()
            now = datetime.now(UTC)
            with self._lock:
                over = [day for day in self._open if now - DAY_GRACE >= _midnight_after(day)]
                for day in over:
                    self._close(day)
            if over:
                try:
                    predictionlog.compact(self.params, before=now.date())
                except Exception:  # the journals stay readable; the next compaction retries
                    log.exception("could not compact the prediction log")

    def close(self) -> None:
        """Write what is held (the process is stopping) and close the journals; what cannot
        be written is lost, and said so."""
        left = self.flush()
        if left:
            log.error("the prediction log could not be written: %d records are lost", left)
        with self._lock:
            for day in list(self._open):
                self._close(day)

    def _write(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Write records to their days' journals; return the ones that could not be."""
        days = predictionlog.by_day(records)
        for number, (day, part) in enumerate(days):
            done = self._write_day(day, part)
            if done < len(part):
                return part[done:] + [r for _, rest in days[number + 1 :] for r in rest]
        return []

    def _write_day(self, day: date, part: list[dict[str, Any]]) -> int:
        """How many of `part` reached the day's journal: all, unless a write failed."""
        lines = [predictionlog.journal_line(record) for record in part]
        data, sent = memoryview(b"".join(lines)), 0
        try:
            if day not in self._open:
                self._open[day] = predictionlog.open_journal(self.params, day)
            fd = self._open[day][0]
            crash_point("predictionlog.write")
            while sent < len(data):
                sent += os.write(fd, data[sent:])
            if self.params.serve.log_fsync == "always":
                os.fsync(fd)
            elif self.params.serve.log_fsync == "interval":
                self._unsynced.add(day)
            return len(part)
        except Exception as exc:
            if not self._held:
                log.warning("cannot write the prediction log (%s); holding records", exc)
            if self.metrics:
                self.metrics.log_failures.inc()
            self._close(day)  # the next write starts a new journal, past any torn line
            ends, done = 0, 0
            for line in lines:  # the lines written whole are in the journal: not twice
                ends += len(line)
                done += ends <= sent
            return done

    def _hold(self, records: list[dict[str, Any]]) -> None:
        self._held += records
        excess = len(self._held) - self.params.serve.log_max_buffered
        if excess > 0:
            del self._held[:excess]
            if self.metrics:
                self.metrics.log_dropped.inc(excess)
        if self.metrics:
            self.metrics.log_held.set(len(self._held))

    def _close(self, day: date) -> None:
        fd, _ = self._open.pop(day, (None, None))
        self._unsynced.discard(day)
        if fd is not None:
            os.close(fd)


def _midnight_after(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1)
