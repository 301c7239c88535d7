"""Benchmark: the training stage against a bare fit, and MLflow logging against pickle.

In a temporary workspace holding the demo's 24 dataset versions, measured in the same run:
- the whole `train` stage for the latest version (read the version, build and check the
  modelling table, fit, score on the pinned test set and baselines, backtest, log, register,
  gate) against a bare `HistGradientBoostingRegressor.fit` on pre-loaded feature arrays;
- logging and registering the model in MLflow against `pickle.dump` of the same Pipeline.

    make bench-train        # or: .venv/bin/python bench/train.py
"""

from __future__ import annotations

import io
import logging
import pickle
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> int:
    from tests.conftest import make_workspace

    from powerops.core.config import load_params
    from powerops.data import stages
    from powerops.data.catalog import Catalog
    from powerops.model import forecasting, testset, training

    logging.basicConfig(level=logging.WARNING)
    source = load_params(REPO / "params.yaml").source_path()
    with tempfile.TemporaryDirectory(prefix="powerops-bench-") as tmp:
        workspace = make_workspace(Path(tmp) / "ws", source, through="2008-11")
        params = load_params(workspace / "params.yaml")
        print("preparing 24 dataset versions ...", flush=True)
        stages.ingest(params)
        stages.validate(params)
        stages.publish(params, push=False)
        record = Catalog(params.catalog_dir).load(params.dataset.name)
        assert record.latest is not None

        started = time.perf_counter()
        (result,) = training.train(params, record.latest.version, by="bench")
        stage_seconds = time.perf_counter() - started

        # The same fit, stripped of everything around it: features already computed.
        readings = training.read_version(params, record.latest)
        table = training.checked_table(params, readings, "bench")
        _, manifest = testset.load(params)
        rows = (
            testset.training_mask(table["timestamp"], manifest, params) & table["load_kw"].notna()
        )
        pipeline = forecasting.make_pipeline(params)
        features = forecasting.features_of(pipeline).fit(table).transform(table)
        x, y = features[rows].to_numpy(), table.loc[rows, "load_kw"].to_numpy()
        estimator = forecasting.predictor_of(pipeline)
        started = time.perf_counter()
        estimator.fit(x, y)
        bare_fit = time.perf_counter() - started
        fitted = forecasting.fit(forecasting.make_pipeline(params), table, rows)
        started = time.perf_counter()
        pickle.dump(fitted, io.BytesIO())
        pickled = time.perf_counter() - started

    log_register = result.seconds["register"]
    print(f"training rows {len(y):,}, features {x.shape[1]}, model version {result.model_version}")
    print(f"{'measure':<44} {'seconds':>8} {'ratio':>8}")
    print(f"{'bare HistGradientBoosting fit (baseline)':<44} {bare_fit:>8.2f} {1:>8.2f}")
    print(
        f"{'train stage, whole (read..register, gate)':<44} {stage_seconds:>8.2f} "
        f"{stage_seconds / bare_fit:>8.2f}"
    )
    for name, seconds in result.seconds.items():
        print(f"{'  of which ' + name:<44} {seconds:>8.2f} {seconds / bare_fit:>8.2f}")
    print(f"{'pickle.dump of the Pipeline (baseline)':<44} {pickled:>8.3f} {1:>8.2f}")
    print(
        f"{'MLflow log_model + register_model':<44} {log_register:>8.3f} "
        f"{log_register / pickled:>8.1f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
