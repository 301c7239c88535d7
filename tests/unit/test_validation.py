"""Reading batches and derived columns: the parts of the validation gate outside GE."""

from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from powerops.validation import BatchReadError, read_batch

Frame = Callable[[str, str], pd.DataFrame]


def test_batch_with_a_repeated_column_is_unreadable_naming_it(
    minute_frame: Frame, tmp_path: Path
) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    frame = minute_frame("2008-01-01", "2008-01-01 00:10")
    table = pa.Table.from_pandas(frame, preserve_index=False)
    pq.write_table(table.add_column(3, "Voltage", pa.array([0.0] * len(frame))), tmp_path / "b.pq")
    with pytest.raises(BatchReadError) as refused:
        read_batch(tmp_path / "b.pq")
    assert str(refused.value) == (
        "b.pq: column `Voltage` appears 2 times in the schema; "
        "a repeated column is ambiguous: fix the batch"
    )
