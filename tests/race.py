"""Two writers at once, each in a process of its own as on two hosts, meeting at a barrier
before every round: the races that tests/e2e/test_shared_state.py and tests/cluster run
against the shared state's head.

The processes live for all the rounds (spawned once: importing DVC takes a second or two), so
a round costs what the writers do, and the barrier lines them up to a few milliseconds.
"""

from __future__ import annotations

import multiprocessing
import queue
import time
from collections.abc import Callable
from multiprocessing.process import BaseProcess
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any

from powerops.core.config import load_params
from powerops.data import dvcstore
from powerops.ops import shared

# What one writer does in round `n` from its workspace `root`: True if it won.
Writer = Callable[[Path, int, Barrier], bool]
WON, LOST = "won", "lost"


def race(
    writer: Writer, roots: list[Path], rounds: int, timeout: float = 120
) -> list[dict[str, str]]:
    """Run `writer` from each workspace at once, `rounds` times; each round's outcome by writer
    (the workspace's folder name): "won", "lost", or the error it raised."""
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(len(roots), timeout=30)
    results: Any = context.Queue()
    processes = [
        context.Process(target=_rounds, args=(writer, root, barrier, results, rounds))
        for root in roots
    ]
    for process in processes:
        process.start()
    outcomes: list[dict[str, str]] = [{} for _ in range(rounds)]
    try:
        for n, name, outcome in _collect(results, processes, rounds * len(roots), timeout):
            outcomes[n][name] = outcome
    finally:
        for process in processes:
            process.join(timeout=10)
            if process.is_alive():
                process.kill()
    return outcomes


def _collect(
    results: Any, processes: list[BaseProcess], count: int, timeout: float
) -> list[tuple[int, str, str]]:
    """`count` results, failing at once if a writer's process dies instead of waiting."""
    collected: list[tuple[int, str, str]] = []
    deadline = time.monotonic() + timeout
    while len(collected) < count:
        try:
            collected.append(results.get(timeout=1))
        except queue.Empty:
            died = [process.exitcode for process in processes if process.exitcode]
            assert not died, f"a writer's process exited with {died}"
            assert time.monotonic() < deadline, f"{len(collected)} of {count} results in time"
    return collected


def _rounds(writer: Writer, root: Path, barrier: Barrier, results: Any, rounds: int) -> None:
    for n in range(rounds):
        try:
            barrier.wait()
            outcome = WON if writer(root, n, barrier) else LOST
        except Exception as exc:  # the parent asserts every outcome: this one fails the test
            outcome = f"{type(exc).__name__}: {exc}"
        results.put((n, root.name, outcome))


def head_file(n: int) -> str:
    return f"{n + 1:08d}.json"


def head_bytes(writer: str, n: int) -> bytes:
    """What `writer` tries to record in round `n`: different for every writer."""
    return f'{{"by": "{writer}", "round": {n}}}\n'.encode()


def create_head(root: Path, n: int, barrier: Barrier) -> bool:
    """Create round `n`'s head file on the workspace's DVC remote (the bare primitive)."""
    data = head_bytes(root.name, n)
    return dvcstore.create_remote_file(root, shared.HEAD_FOLDER, head_file(n), data)


def push_change(root: Path, n: int, barrier: Barrier) -> bool:
    """Pull the head, change a shared folder and push it; False if the push was refused."""
    params = load_params(root / "params.yaml")
    base = shared.pull(params)
    params.validation_dir.mkdir(parents=True, exist_ok=True)
    (params.validation_dir / f"{root.name}-{n}.json").write_bytes(head_bytes(root.name, n))
    read_head = shared.head

    # Both writers read the head before either records the next one, as when two tasks finish
    # together: what decides the round is then creating the next head, not the check before it.
    def head_then_wait(params: Any) -> shared.Head:
        found = read_head(params)
        barrier.wait()
        return found

    shared.head = head_then_wait  # type: ignore[assignment]
    try:
        shared.push(params, base, root.name)
    except shared.SharedStateError as exc:
        if "was recorded by another" not in str(exc):
            raise  # both passed the check on the head: only creating the next one may refuse
        return False
    finally:
        shared.head = read_head  # type: ignore[assignment]
    return True


def winners(outcomes: list[dict[str, str]]) -> list[str]:
    """Each round's one winner; fails naming the rounds that had none, or two."""
    unclear = {
        n: round_ for n, round_ in enumerate(outcomes) if sorted(round_.values()) != [LOST, WON]
    }
    assert not unclear, (
        f"{len(unclear)} of {len(outcomes)} rounds without exactly one winner, first ones: "
        f"{dict(list(unclear.items())[:3])}"
    )
    return [next(name for name, outcome in round_.items() if outcome == WON) for round_ in outcomes]


def assert_heads_hold_the_winners(folder: Path, outcomes: list[dict[str, str]]) -> None:
    """One head file per round, holding its winner's bytes, and no partial file left over."""
    names = sorted(path.name for path in folder.iterdir())
    assert names == [head_file(n) for n in range(len(outcomes))], names
    for n, winner in enumerate(winners(outcomes)):
        assert (folder / head_file(n)).read_bytes() == head_bytes(winner, n), f"round {n}"
