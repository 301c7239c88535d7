import subprocess
import sys
from pathlib import Path

import pytest

from powerops.core.storage import atomic_path, atomic_write_text, sha256_file
from powerops.data.datasets import batch_files


def test_atomic_write_replaces_whole_file(tmp_path: Path) -> None:
    target = tmp_path / "a.txt"
    atomic_write_text(target, "old")
    atomic_write_text(target, "new")
    assert target.read_text() == "new"
    assert list(tmp_path.iterdir()) == [target]


def test_exception_mid_write_keeps_previous_file_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "2008-03.parquet"
    target.write_bytes(b"previous batch")
    with pytest.raises(RuntimeError, match="disk full"), atomic_path(target) as tmp:
        tmp.write_bytes(b"half of the new")
        raise RuntimeError("disk full")
    assert target.read_bytes() == b"previous batch"
    assert list(tmp_path.iterdir()) == [target]


CRASHING_WRITER = """
import os, sys
from pathlib import Path
from powerops.core.storage import atomic_path
target = Path(sys.argv[1])
with atomic_path(target) as tmp:
    with open(tmp, "wb") as handle:
        handle.write(b"torn new cont")
        handle.flush()
        os._exit(9)  # the process dies: no finally block, no cleanup, no rename
"""


def test_killed_process_mid_write_keeps_previous_file(tmp_path: Path) -> None:
    target = tmp_path / "2008-03.parquet"
    target.write_bytes(b"previous batch")
    before = sha256_file(target)
    result = subprocess.run([sys.executable, "-c", CRASHING_WRITER, str(target)], check=False)
    assert result.returncode == 9
    assert sha256_file(target) == before
    # The crash leaves a hidden temporary file; readers of the batch directory never see it.
    leftovers = [p for p in tmp_path.iterdir() if p != target]
    assert len(leftovers) == 1 and leftovers[0].name.startswith(".")
    assert list(batch_files(tmp_path)) == ["2008-03"]
