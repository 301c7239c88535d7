import gzip
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from powerops.core.config import SourceConfig
from powerops.core.months import Month, MonthError
from powerops.data.source import SourceError, SourceFeed, read_source, slice_month

COLUMNS = (
    "Global_active_power",
    "Global_reactive_power",
    "Voltage",
    "Global_intensity",
    "Sub_metering_1",
    "Sub_metering_2",
    "Sub_metering_3",
)
CONFIG = SourceConfig(path="x.csv", columns=COLUMNS)
Frame = Callable[[str, str], pd.DataFrame]


def test_slice_includes_first_minute_and_excludes_next_month(minute_frame: Frame) -> None:
    frame = minute_frame("2008-01-31 23:58", "2008-03-01 00:02")
    february = slice_month(frame, Month(2008, 2), "date_time")
    assert february["date_time"].iloc[0] == pd.Timestamp("2008-02-01 00:00")
    assert february["date_time"].iloc[-1] == pd.Timestamp("2008-02-29 23:59")
    assert len(february) == 29 * 24 * 60  # leap year


def test_slices_partition_the_source(minute_frame: Frame) -> None:
    frame = minute_frame("2007-11-15 12:00", "2008-02-10")
    months = Month(2007, 11).range_to(Month(2008, 2))
    parts = [slice_month(frame, m, "date_time") for m in months]
    assert sum(len(p) for p in parts) == len(frame)
    pd.testing.assert_frame_equal(pd.concat(parts, ignore_index=True), frame)


def write_csv(frame: pd.DataFrame, path: Path) -> Path:
    frame.to_csv(path, index=False, date_format="%Y-%m-%d %H:%M:%S")
    return path


def test_feed_reads_once_and_knows_its_range(minute_frame: Frame, tmp_path: Path) -> None:
    path = write_csv(minute_frame("2007-12-20", "2008-02-03"), tmp_path / "s.csv")
    feed = SourceFeed(path, CONFIG, progress=False)
    assert [str(m) for m in feed.months()] == ["2007-12", "2008-01", "2008-02"]
    first = feed.frame
    assert len(feed.month(Month(2008, 1))) == 31 * 24 * 60
    assert feed.frame is first  # served from memory, not read again
    with pytest.raises(
        MonthError, match=r"2008-03 is outside the source's range 2007-12\.\.2008-02"
    ):
        feed.month(Month(2008, 3))


def test_unsorted_source_is_sorted_and_typed(minute_frame: Frame, tmp_path: Path) -> None:
    frame = minute_frame("2008-01-01", "2008-01-02")
    path = write_csv(frame.sample(frac=1, random_state=0), tmp_path / "s.csv")
    read = read_source(path, CONFIG, progress=False)
    assert read["date_time"].is_monotonic_increasing
    assert str(read["date_time"].dtype) == "datetime64[us]"
    pd.testing.assert_frame_equal(read, frame)


def test_parquet_source_and_custom_timestamp_format(minute_frame: Frame, tmp_path: Path) -> None:
    frame = minute_frame("2008-01-01", "2008-01-02")
    frame.to_parquet(tmp_path / "s.parquet")
    pd.testing.assert_frame_equal(
        read_source(tmp_path / "s.parquet", CONFIG, progress=False), frame
    )
    # The original UCI layout: day-first dates and a semicolon delimiter.
    uci = frame.assign(date_time=frame["date_time"].dt.strftime("%d/%m/%Y %H:%M:%S"))
    uci.to_csv(tmp_path / "uci.txt", index=False, sep=";")
    config = CONFIG.model_copy(update={"timestamp_format": "%d/%m/%Y %H:%M:%S", "delimiter": ";"})
    pd.testing.assert_frame_equal(read_source(tmp_path / "uci.txt", config, progress=False), frame)
    # Read with the default delimiter, the header is one column: the error names the key.
    with pytest.raises(SourceError, match=r"the header holds ';': set source\.delimiter to it"):
        read_source(tmp_path / "uci.txt", CONFIG.model_copy(update={"timestamp_format": None}))


def test_missing_column_and_missing_file_name_the_problem(
    minute_frame: Frame, tmp_path: Path
) -> None:
    frame = minute_frame("2008-01-01", "2008-01-02").drop(columns=["Voltage"])
    path = write_csv(frame, tmp_path / "s.csv")
    with pytest.raises(SourceError, match="missing column\\(s\\) Voltage"):
        read_source(path, CONFIG, progress=False)
    with pytest.raises(SourceError, match="source file not found"):
        read_source(tmp_path / "absent.csv", CONFIG, progress=False)


def test_unparseable_value_is_a_source_error(minute_frame: Frame, tmp_path: Path) -> None:
    frame = minute_frame("2008-01-01", "2008-01-01 00:10").astype({"Voltage": object})
    frame.loc[3, "Voltage"] = "high"
    path = write_csv(frame, tmp_path / "s.csv")
    with pytest.raises(SourceError, match="cannot read the source"):
        read_source(path, CONFIG, progress=False)


def test_progress_bar_reports_bytes_read_when_asked(
    minute_frame: Frame, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_csv(minute_frame("2008-01-01", "2008-01-03"), tmp_path / "s.csv")
    read_source(path, CONFIG, progress=True)
    assert "reading s.csv" in capsys.readouterr().err
    read_source(path, CONFIG, progress=False)
    assert capsys.readouterr().err == ""


def test_repeated_column_in_csv_header_is_refused(minute_frame: Frame, tmp_path: Path) -> None:
    frame = minute_frame("2008-01-01", "2008-01-01 00:10")
    # The first `Voltage` is the wrong one; Arrow used to keep it and drop the right one.
    wrong = frame.insert(3, "Voltage", 0.0, allow_duplicates=True)
    assert wrong is None and list(frame.columns).count("Voltage") == 2
    path = write_csv(frame, tmp_path / "s.csv")
    with pytest.raises(SourceError) as refused:
        read_source(path, CONFIG, progress=False)
    assert str(refused.value) == (
        f"{path}: column `Voltage` appears 2 times in the header; "
        "a repeated column is ambiguous: fix the file"
    )


def test_repeated_column_in_parquet_schema_is_refused(minute_frame: Frame, tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    frame = minute_frame("2008-01-01", "2008-01-01 00:10")
    table = pa.Table.from_pandas(frame, preserve_index=False)
    pq.write_table(table.add_column(1, "Voltage", pa.array([0.0] * len(frame))), tmp_path / "s.pq")
    with pytest.raises(SourceError, match=r"column `Voltage` appears 2 times in the schema"):
        read_source(tmp_path / "s.pq", CONFIG, progress=False)


@pytest.mark.parametrize(
    "content",
    [
        gzip.compress(b"date_time,Voltage\n2008-01-01 00:00:00,240.0\n" * 50),
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x01\x00" + bytes(range(256)),
    ],
    ids=["gzip", "png"],
)
def test_binary_source_is_named_not_echoed(content: bytes, tmp_path: Path) -> None:
    path = tmp_path / "readings.csv"
    path.write_bytes(content)
    with pytest.raises(SourceError) as refused:
        read_source(path, CONFIG, progress=False)
    assert str(refused.value) == (
        f"{path}: does not look like a text CSV file (binary content at its start); "
        "check source.path and source.format"
    )


def test_parse_error_quoting_a_binary_row_is_printable_and_bounded(
    minute_frame: Frame, tmp_path: Path
) -> None:
    path = write_csv(minute_frame("2008-01-01", "2008-01-01 02:00"), tmp_path / "s.csv")
    with open(path, "ab") as handle:  # past the first bytes, so only Arrow's parser sees it
        handle.write(b"2008-01-01 02:00:00,\x01\xff\x00" + b"\x1b[2J" * 2000 + b",1\n")
    with pytest.raises(SourceError) as refused:
        read_source(path, CONFIG, progress=False)
    message = str(refused.value)
    assert message.startswith(f"{path}: cannot read the source: CSV parse error")
    assert message.isprintable() and "\\x01" in message and "\\x1b" in message
    assert len(message) < len(str(path)) + 250 and message.endswith("...")


def test_header_must_be_utf8_text_and_may_start_with_a_bom(
    minute_frame: Frame, tmp_path: Path
) -> None:
    frame = minute_frame("2008-01-01", "2008-01-01 00:10")
    text = frame.to_csv(index=False, date_format="%Y-%m-%d %H:%M:%S")
    (tmp_path / "bom.csv").write_bytes(b"\xef\xbb\xbf" + text.encode())
    pd.testing.assert_frame_equal(read_source(tmp_path / "bom.csv", CONFIG, progress=False), frame)
    (tmp_path / "latin1.csv").write_bytes(text.replace("Voltage", "Tension_é").encode("latin-1"))
    with pytest.raises(SourceError, match=r"header is not UTF-8 text \(.*Tension_\\xe9.*\); save"):
        read_source(tmp_path / "latin1.csv", CONFIG, progress=False)
