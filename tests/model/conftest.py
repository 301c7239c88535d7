"""A model trained on real data (2006-12..2008-03) with the shipped configuration, in memory."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from powerops.core.config import Params, load_params
from powerops.data.source import read_source
from powerops.data.table import modelling_table
from powerops.model import forecasting, testset
from tests.conftest import REPO


@dataclass
class Trained:
    params: Params
    table: pd.DataFrame
    train_rows: pd.Series
    test_frame: pd.DataFrame
    pipeline: object


@pytest.fixture(scope="session")
def real_table() -> pd.DataFrame:
    params = load_params(REPO / "params.yaml")
    readings = read_source(params.source_path(), params.source, progress=False)
    readings = readings[readings["date_time"] < "2008-04-01"]
    return modelling_table(readings, "date_time", "Global_active_power", "1h", "1min")


@pytest.fixture(scope="session")
def trained(real_table: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> Trained:
    root: Path = tmp_path_factory.mktemp("model")
    params = load_params(REPO / "params.yaml").model_copy(update={"root": root})
    testset.pin(real_table, params, created_at="2026-11-28T00:00:00+00:00")
    test_frame, manifest = testset.load(params)
    rows = testset.training_mask(real_table["timestamp"], manifest, params)
    pipeline = forecasting.fit(forecasting.make_pipeline(params), real_table, rows)
    return Trained(params, real_table, rows, test_frame, pipeline)
