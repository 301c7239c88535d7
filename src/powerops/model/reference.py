"""What monitoring needs from training, computed once when the model is fitted and stored with
the model version: reference profiles and the outlier detector.

* `reference.json`: drift profiles (`powerops.model.drift`) of the model's history features, the
  target and the model's predictions on its training rows, per calendar month; the training
  period; the input columns and their types (the training signature).
* `outliers.pkl`: an IsolationForest fitted on the same history features, whose threshold
  calls `monitor.outlier_contamination` of the training rows outliers.

Monitoring then reads the current window and these two files, never the training data.
"""

from __future__ import annotations

import json
import pickle
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from powerops.core.config import Params
from powerops.data.table import TARGET
from powerops.model import drift, features
from powerops.model.forecasting import features_of, predictor_of
from powerops.model.skew import frame_schema

if TYPE_CHECKING:
    import pandas as pd
    from mlflow.entities.model_registry import ModelVersion

# Where they sit among a model version's MLflow run artifacts.
ARTIFACT_DIR = "monitoring"
REFERENCE_FILE = "reference.json"
OUTLIERS_FILE = "outliers.pkl"
# The features monitored for drift and outliers: the ones computed from the load history.
# Calendar features are a function of the timestamp and cannot drift; `step` is the position
# in the forecast block.
HISTORY_PREFIX = "history__"
NOT_MONITORED = ("history__step",)
PREDICTION = "prediction"


def monitored_features(features: pd.DataFrame) -> list[str]:
    return [c for c in features.columns if c.startswith(HISTORY_PREFIX) and c not in NOT_MONITORED]


def build(
    params: Params, pipeline: Any, table: pd.DataFrame, rows: pd.Series
) -> tuple[bytes, bytes]:
    """The reference JSON and the pickled outlier detector of a fitted pipeline, from the
    rows it was trained on (`rows` of `table`, which holds their history)."""
    import numpy as np
    from sklearn.ensemble import IsolationForest

    features = features_of(pipeline).transform(table)
    use = (rows & table[TARGET].notna()).to_numpy()
    columns = monitored_features(features)
    used = features.loc[use]
    seasons = table.loc[use, "timestamp"].dt.month.to_numpy()
    predictions = predictor_of(pipeline).predict(used)
    profile = drift.build_profile(
        {**{c: used[c].to_numpy() for c in columns}, TARGET: table.loc[use, TARGET].to_numpy()}
        | {PREDICTION: predictions},
        seasons,
    )
    complete = used[columns].notna().all(axis=1).to_numpy()
    detector = IsolationForest(
        n_estimators=100,
        contamination=params.monitor.outlier_contamination,
        random_state=0,
        n_jobs=1,
    ).fit(used.loc[complete, columns].to_numpy())
    timestamps = table.loc[use, "timestamp"]
    document = {
        "features": columns,
        "target": TARGET,
        "prediction": PREDICTION,
        "input_schema": frame_schema(table),  # the signature serving must match
        "training_start": timestamps.min().isoformat(),
        "training_end": timestamps.max().isoformat(),
        "training_rows": int(use.sum()),
        "outlier_rate_training": float(
            np.mean(detector.predict(used.loc[complete, columns].to_numpy()) < 0)
        ),
        "profile": profile.to_dict(),
    }
    return (
        json.dumps(document, sort_keys=True).encode(),
        pickle.dumps(detector, protocol=5),
    )


class Reference:
    """A model version's stored reference, loaded back."""

    def __init__(self, document: dict[str, Any], detector: Any) -> None:
        self.document = document
        self.profile = drift.Profile.from_dict(document["profile"])
        self.features: list[str] = list(document["features"])
        self.detector = detector

    @property
    def training_end(self) -> pd.Timestamp:
        import pandas as pd

        return pd.Timestamp(self.document["training_end"])

    @property
    def input_schema(self) -> dict[str, str]:
        return dict(self.document["input_schema"])

    @classmethod
    def from_bytes(cls, document: bytes, detector: bytes) -> Reference:
        # Our own files, written by training and logged with the model version.
        return cls(json.loads(document), pickle.loads(detector))


class MissingReferenceError(LookupError):
    """A model version was logged without the monitoring artifacts."""


def load_model_version(params: Params, version: ModelVersion) -> tuple[Any, Reference]:
    """A registered version's Pipeline and its stored reference, from MLflow."""
    import mlflow.artifacts
    from mlflow.exceptions import MlflowException

    from powerops.model import registry

    registry.client(params)  # sets the tracking URI
    with tempfile.TemporaryDirectory(prefix="powerops-reference-") as tmp:
        # Absent artifacts are a model without a reference; any other failure is MLflow's.
        with registry.asking(params, f"download version {version.version}'s reference"):
            try:
                local = Path(
                    mlflow.artifacts.download_artifacts(
                        run_id=version.run_id, artifact_path=ARTIFACT_DIR, dst_path=tmp
                    )
                )
            except MlflowException as exc:
                if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
                    raise
                raise MissingReferenceError(
                    f"model version {version.version} has no {ARTIFACT_DIR}/ artifacts "
                    "(trained before monitoring existed?): retrain it"
                ) from None
        reference = Reference.from_bytes(
            (local / REFERENCE_FILE).read_bytes(), (local / OUTLIERS_FILE).read_bytes()
        )
    return load_pipeline(params, version), reference


def load_pipeline(params: Params, version: ModelVersion) -> Any:
    """A registered version's Pipeline, from MLflow."""
    import mlflow.sklearn

    from powerops.model import registry

    registry.client(params)  # sets the tracking URI
    features.accept_old_pickles()
    with registry.asking(params, f"load model version {version.version}"):
        return mlflow.sklearn.load_model(f"models:/{params.mlflow.model_name}/{version.version}")
