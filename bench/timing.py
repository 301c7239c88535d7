"""What the benchmarks share: the best of repeated timings (the machine is shared and noisy,
so the fastest run is the one least disturbed)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def best_of(repeat: int, work: Callable[[], T]) -> tuple[float, T]:
    """The fastest of `repeat` runs of `work`, in seconds, and the last run's result."""
    times = []
    for _ in range(max(1, repeat)):
        started = time.perf_counter()
        result = work()
        times.append(time.perf_counter() - started)
    return min(times), result
