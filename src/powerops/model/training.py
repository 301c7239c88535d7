"""Training, evaluation, the promotion gate and registration of dataset versions.

One training is a `Job` (a dataset version under one configuration) taken through five steps:
`build_table` builds and checks the modelling table and pins (or reads) the test set; `fit` fits
the Pipeline on everything but the test weeks; `evaluate` scores it and the baselines on the
pinned rows and runs the rolling-origin backtest; `gate` applies the promotion rules; and
`register` logs the run and model to MLflow, registers the version and moves `champion` only
if the gate said so. Each step keeps its output in the job's directory (`paths.training`), so
the steps can run as separate Airflow tasks and any of them can run again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import pickle
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from powerops.core.config import Params
from powerops.core.errors import PowerOpsError
from powerops.core.faults import crash_point
from powerops.core.storage import (
    atomic_path,
    atomic_write_text,
    parquet_bytes,
    sha256_bytes,
    sha256_file,
)
from powerops.data import dvcstore
from powerops.data.catalog import Catalog, DatasetRecord, VersionRecord
from powerops.data.datasets import batch_files, content_hash, manifest
from powerops.data.table import TARGET, exogenous_columns, table_for
from powerops.model import (
    features,
    forecasting,
    reference,
    registry,
    selection,
    significance,
    testset,
    walkforward,
)

if TYPE_CHECKING:
    import pandas as pd
    from mlflow.entities.model_registry import ModelVersion

log = logging.getLogger(__name__)


class TrainingError(PowerOpsError):
    """Training cannot run on this data or configuration (the message says why)."""


class TableCheckError(TrainingError):
    """The modelling table of a dataset version failed its checks: a data problem, which no
    retry fixes (the power_train DAG fails without retrying)."""


@dataclass
class TrainResult:
    """What one training produced: small, JSON-able, fit for XCom and logs."""

    data_version: int
    model_version: str
    run_id: str
    test_set_hash: str
    metrics: dict[str, float]
    promoted: bool
    verdict: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)


# Keys added after models were first trained, with the value every earlier model had: left out
# of the fingerprint at that value, so upgrading powerops alone trains no new challenger.
_ADDED_KEYS: dict[str, dict[str, Any]] = {
    "forecast": {"calendar": "ordinal", "week_start": None},
    "train": {"preprocess": "none", "candidates": [], "cv_folds": 3, "cv_fold_days": 28},
    "test_set": {"embargo": "rows"},
    "table": {"known": [], "observed": []},
}


def config_hash(params: Params) -> str:
    """Fingerprint of everything that shapes a model besides the data."""
    relevant: dict[str, Any] = {
        "table": params.table.model_dump(mode="json"),
        "forecast": params.forecast.model_dump(mode="json"),
        "test_set": params.test_set.model_dump(mode="json"),
        "train": params.train.model_dump(
            mode="json", exclude={"first_version", "every", "threads"}
        ),
        # Fitted with the model and stored with it (powerops.model.reference).
        "outlier_contamination": params.monitor.outlier_contamination,
    }
    for section, added in _ADDED_KEYS.items():
        for key, before in added.items():
            if key in relevant[section] and relevant[section][key] == before:
                del relevant[section][key]
    return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:16]


def due_versions(record: DatasetRecord, params: Params, trained: set[tuple[int, str]]) -> list[int]:
    """Dataset versions to train on now.

    Replaying history: every `train.every`-th version from `train.first_version` that is newer
    than any version trained so far. Always: the latest version, unless it already has a model
    of this configuration. So a new configuration trains one challenger on the latest data,
    not the whole history again.
    """
    latest = record.latest
    if latest is None or latest.version < params.train.first_version:
        return []
    newest_trained = max((version for version, _ in trained), default=0)
    first, every = params.train.first_version, params.train.every
    wanted = {v for v in range(first, latest.version + 1, every) if v > newest_trained}
    if (latest.version, config_hash(params)) not in trained:
        wanted.add(latest.version)
    return sorted(wanted)


def read_version(params: Params, version: VersionRecord) -> pd.DataFrame:
    """The minute readings of one dataset version: from the working copy if it holds that
    version, otherwise restored from DVC into a temporary directory (the working copy stays)."""
    import pandas as pd

    def read(directory: Path) -> pd.DataFrame:
        frames = [pd.read_parquet(path) for path in batch_files(directory).values()]
        readings = pd.concat(frames, ignore_index=True)
        return readings.sort_values(params.source.timestamp_column, ignore_index=True)

    if content_hash(manifest(params.dataset_dir)) == version.content_hash:
        return read(params.dataset_dir)
    with tempfile.TemporaryDirectory(prefix="powerops-version-") as tmp:
        target = Path(tmp) / "dataset"
        dvcstore.restore(params.root, version.dvc_md5, target)
        return read(target)


def checked_table(params: Params, readings: pd.DataFrame, name: str) -> pd.DataFrame:
    """The modelling table of these readings, checked by the `training_table` suite. A version
    that lacks a month (one rejected from quarantine) is refused first, in words."""
    import numpy as np

    from powerops.data.validation import validate_table

    timestamps = readings[params.source.timestamp_column]
    months = np.unique(timestamps.to_numpy().astype("datetime64[M]"))
    every = np.arange(months[0], months[-1] + 1)
    if lacking := [str(month) for month in np.setdiff1d(every, months)]:
        raise TableCheckError(
            f"{name} lacks {', '.join(lacking)} (a month rejected from quarantine leaves a gap): "
            "the modelling table needs every period from the first month to the last, so this "
            "version cannot train; earlier versions still can (`powerops train --data-version N`)"
        )
    table = table_for(params, readings)
    report = validate_table(table, params, timestamps.iloc[0], timestamps.iloc[-1], name)
    if not report.success:
        raise TableCheckError(report.message())
    return table


def git_commit(root: Path) -> str:
    """The code's commit, with `-dirty` when the work tree has changes; `unknown` outside git."""
    try:
        head = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{head}-dirty" if dirty else head


def gate_verdict(
    params: Params, challenger: forecasting.Evaluation, champion: forecasting.Evaluation | None
) -> tuple[bool, list[str]]:
    """Promotion rules on the pinned test set; returns the verdict and a reason per rule."""
    rules = params.gate
    checks = [
        _baseline_check(params, challenger),
        (
            challenger.model["wape"] <= rules.max_wape,
            f"wape {challenger.model['wape']:.4f} within the error budget {rules.max_wape:.4f}",
        ),
    ]
    if champion is not None:
        checks.append(_champion_check(params, challenger, champion))
    reasons = [("pass: " if ok else "FAIL: ") + text for ok, text in checks]
    return all(ok for ok, _ in checks), reasons


def _baseline_check(params: Params, challenger: forecasting.Evaluation) -> tuple[bool, str]:
    """The challenger beats the best of `gate.baselines` by `min_improvement_vs_baseline`."""
    rules = params.gate
    metric = rules.metric
    missing = [name for name in rules.baselines if name not in challenger.baselines]
    if missing:
        return False, (
            f"{metric}: gate.baselines {missing} were not scored on the test set "
            "(evaluate again under this configuration)"
        )
    best = min(rules.baselines, key=lambda name: challenger.baselines[name][metric])
    other = challenger.baselines[best][metric]
    limit = other * (1 - rules.min_improvement_vs_baseline)
    score = challenger.model[metric]
    label = f"best baseline {best.replace('_', ' ')}"
    return score <= limit, _versus(metric, score, label, other, "<=", limit)


def _champion_check(
    params: Params, challenger: forecasting.Evaluation, champion: forecasting.Evaluation
) -> tuple[bool, str]:
    """The challenger beats the champion by `min_improvement_vs_champion` and, unless
    `gate.significance` is null, its gain is significant in a one-sided Diebold-Mariano test
    on the daily losses of both (powerops.model.significance)."""
    from datetime import date

    rules = params.gate
    metric = rules.metric
    score, other = challenger.model[metric], champion.model[metric]
    bound = other * (1 - rules.min_improvement_vs_champion)
    text = _versus(metric, score, "champion", other, "<", bound)
    if rules.significance is None:
        return score < bound, text
    ours, theirs = challenger.losses(metric), champion.losses(metric)
    paired = challenger.days == champion.days and challenger.rows == champion.rows
    if not ours or not paired or len(ours) != len(theirs):
        return False, f"{text[:-1]}; no paired test: not scored on the same rows and days)"
    try:
        ordinals = [date.fromisoformat(day).toordinal() for day in challenger.days]
        test = significance.diebold_mariano(ours, theirs, ordinals)
    except ValueError as exc:
        return False, f"{text[:-1]}; no paired test: {exc})"
    significant = test.p_value < rules.significance
    loss = " in squared error" if metric == "rmse" else ""
    level = f"{rules.significance:g}"
    text = (
        f"{text[:-1]}; gain{loss} {test.gain:+.2%}, {test.confidence:.0%} CI "
        f"{test.gain_low:+.2%}..{test.gain_high:+.2%}, p={test.p_value:.2g} "
        + (f"< {level}: significant)" if significant else f">= {level}: not significant)")
    )
    return score < bound and significant, text


def _versus(metric: str, score: float, name: str, other: float, rule: str, bound: float) -> str:
    """One gate reason, with the digits (4 to 8) that tell the numbers apart: a 3e-5 margin
    must not read "0.4381 vs 0.4381"."""
    distinct = {score, other, bound}
    digits = next(
        (d for d in range(4, 8) if len({f"{v:.{d}f}" for v in distinct}) == len(distinct)), 8
    )
    gap = f"{score - other:+.{digits}f}"
    if score != other and float(gap) == 0:  # closer than 8 digits tell
        gap = f"{score - other:+.0e}"
    return (
        f"{metric} {score:.{digits}f} vs {name} {other:.{digits}f} "
        f"({gap}, must be {rule} {bound:.{digits}f})"
    )


def champion_evaluation(
    params: Params, test_frame: pd.DataFrame, test_hash: str
) -> forecasting.Evaluation | None:
    """The champion's scores and daily losses on the current pinned test set's rows: from its
    `evaluation` tag, or re-scored if it was scored on another test set, on other rows (another
    `gate.baselines`) or without daily losses (registered before the gate's paired test)."""
    champion = registry.alias_version(params, registry.CHAMPION)
    if champion is None:
        return None
    if champion.tags.get("test_set_hash") == test_hash and "evaluation" in champion.tags:
        stored = forecasting.Evaluation(**json.loads(champion.tags["evaluation"]))
        if _same_rows(params, stored, test_frame):
            return stored
    log.info(
        "champion version %s was scored on another test set, other rows or without daily "
        "losses: re-scoring it",
        champion.version,
    )
    return forecasting.evaluate(reference.load_pipeline(params, champion), test_frame, params)


def _same_rows(params: Params, stored: forecasting.Evaluation, test_frame: pd.DataFrame) -> bool:
    """Whether `stored` covers the rows and days this configuration scores, with daily losses."""
    rows = forecasting.scored_rows(test_frame, forecasting.baselines(test_frame, params), params)
    days = sorted({f"{day:%Y-%m-%d}" for day in test_frame.loc[rows, "timestamp"].dt.normalize()})
    metric = params.gate.metric
    has_losses = params.gate.significance is None or bool(stored.losses(metric))
    return (
        stored.rows == int(rows.sum()) and (not stored.days or stored.days == days) and has_losses
    )


def evaluation_tag(evaluation: dict[str, Any]) -> str:
    """The `evaluation` tag of a model version: the scores and the daily losses, or the scores
    alone if the losses would pass the tag limit (the champion is then re-scored when judged)."""
    text = json.dumps(evaluation)
    if len(text) > EVALUATION_TAG_LIMIT:
        log.warning(
            "daily losses of %d days exceed the tag limit: not stored", len(evaluation["days"])
        )
        text = json.dumps(evaluation | {"days": [], "daily_loss": {}})
    return text


def input_example(
    test_frame: pd.DataFrame, manifest: testset.TestSetManifest, params: Params
) -> pd.DataFrame:
    """A serving request: the history features need, then the first forecast block to predict."""
    import pandas as pd

    first_origin = pd.Timestamp(manifest.weeks[0])
    block = pd.Timedelta(params.table.frequency) * params.forecast.horizon
    columns = ["timestamp", TARGET, *exogenous_columns(params)]
    rows = test_frame[test_frame["timestamp"] < first_origin + block][columns]
    return rows.tail(params.forecast.lookback + params.forecast.horizon).reset_index(drop=True)


# --- The training steps ----------------------------------------------------------------------
# `train` runs plan -> build_table -> fit -> evaluate -> gate -> register in one process (the CLI
# and `dvc repro`); power_train runs each step as its own Airflow task. A step takes the jobs,
# reads what the step before wrote in each job's directory, writes its own output there
# atomically, and returns small dicts (XCom-sized). Running a step again gives the same state.

TABLE_FILE = "table.parquet"
# On a version: the number of the last alias change when it was registered (model.registry).
ALIAS_CHANGE_TAG = "alias_change_at_registration"
MODEL_FILE = "model.pkl"
# MLflow 3 takes 8,000 characters in a run tag and 100,000 in a model version tag: the
# `evaluation` tag keeps to the smaller (84 days of daily losses take about 3,000).
EVALUATION_TAG_LIMIT = 8000
RECORD_FILE = "job.json"


@dataclass(frozen=True)
class Job:
    """The training of one dataset version under one configuration, staged in a directory."""

    data_version: int
    config_hash: str

    @property
    def name(self) -> str:
        return f"v{self.data_version:04d}-{self.config_hash}"

    def directory(self, params: Params) -> Path:
        return params.training_dir / self.name

    def ref(self) -> dict[str, Any]:
        """What XCom carries between tasks to identify the job."""
        return {"data_version": self.data_version, "config_hash": self.config_hash}

    @classmethod
    def from_ref(cls, ref: dict[str, Any]) -> Job:
        return cls(int(ref["data_version"]), str(ref["config_hash"]))


def _label(params: Params, job: Job) -> str:
    """How the step lines name a training: the dataset version it trains on."""
    return f"{params.dataset.name}@{job.data_version}"


def _record(params: Params, job: Job) -> dict[str, Any]:
    path = job.directory(params) / RECORD_FILE
    if not path.is_file():
        raise TrainingError(f"training {job.name} has no {path}: run its earlier steps first")
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def _save(params: Params, job: Job, step: str, values: dict[str, Any]) -> None:
    """Record a step's outcome in the job's record, replacing an earlier run of the step."""
    path = job.directory(params) / RECORD_FILE
    record = json.loads(path.read_text()) if path.is_file() else {}
    record[step] = values
    atomic_write_text(path, json.dumps(record, indent=2, sort_keys=True))


def _step(params: Params, job: Job, needs: str) -> dict[str, Any]:
    """The job's record, checked to come from this configuration and to hold step `needs`."""
    if config_hash(params) != job.config_hash:
        raise TrainingError(
            f"training {job.name} started under config {job.config_hash}, params.yaml now gives "
            f"{config_hash(params)}: start a new training instead of resuming this one"
        )
    record = _record(params, job)
    if needs not in record:
        raise TrainingError(f"training {job.name} has no `{needs}` step yet: run it first")
    return record


def _registered(params: Params) -> dict[tuple[int, str], ModelVersion]:
    """Registered model versions by (data version, config hash): what is trained already."""
    return {
        (int(v.tags["data_version"]), v.tags.get("config_hash", "")): v
        for v in registry.versions(params)
        if "data_version" in v.tags
    }


def plan(params: Params, data_version: int | None = None) -> list[Job]:
    """The trainings to run now: exactly `data_version`, or what the cadence asks for, plus
    any training a crash left unfinished (see `_unfinished`)."""
    # The stage's DVC output exists even before the first year of data allows a test set.
    params.test_set_dir.mkdir(parents=True, exist_ok=True)
    registry.recover(params)
    catalog = Catalog(params.catalog_dir)
    if not catalog.exists(params.dataset.name):
        log.info("no version of %s published yet: nothing to train", params.dataset.name)
        return []
    record = catalog.load(params.dataset.name)
    registered = _registered(params)
    if data_version is not None:
        chosen = [record.version(data_version).version]
    else:
        chosen = due_versions(record, params, set(registered))
    jobs = {Job(version, config_hash(params)) for version in chosen}
    jobs |= _unfinished(params, registered)
    if jobs:  # a wrong estimator setting stops the run before a table is built
        forecasting.make_pipeline(params)
    return sorted(jobs, key=lambda job: job.data_version)


def _unfinished(params: Params, registered: dict[tuple[int, str], ModelVersion]) -> set[Job]:
    """Trainings of this configuration a crash interrupted: a run still marked RUNNING (killed
    before or after its version was registered), or a version the gate promoted whose promotion
    never happened, if no alias changed since it was registered (then a person decided since)."""
    current = config_hash(params)
    unfinished = set()
    for run in registry.running_runs(params):
        tags = run.data.tags
        if "job" in tags and tags.get("config_hash") == current:
            unfinished.add(Job(int(tags["data_version"]), current))
    journal = registry.changes(params)
    last = str(journal[-1].number) if journal else "0"
    promoted = registry.promoted_versions(params, journal)
    for (data_version, config), version in registered.items():
        pending = (
            version.tags.get("gate") == "promoted"
            and version.tags.get(ALIAS_CHANGE_TAG) == last
            and str(version.version) not in promoted
        )
        if config == current and pending:
            unfinished.add(Job(data_version, current))
    for job in unfinished:
        log.warning("training %s was interrupted: finishing it", job.name)
    return unfinished


def _load_table(params: Params, job: Job, record: dict[str, Any]) -> pd.DataFrame:
    import pandas as pd

    path = job.directory(params) / TABLE_FILE
    if not path.is_file() or sha256_file(path) != record["build_table"]["table_sha256"]:
        raise TrainingError(f"{path} is missing or changed since `build_table`: run it again")
    return pd.read_parquet(path)


def _load_test_set(
    params: Params, record: dict[str, Any]
) -> tuple[pd.DataFrame, testset.TestSetManifest]:
    frame, manifest = testset.load(params)
    if manifest.sha256 != record["build_table"]["test_set_hash"]:
        raise TrainingError(
            "the pinned test set changed during this training (was "
            f"{record['build_table']['test_set_hash'][:12]}, now {manifest.sha256[:12]}): "
            "start anew"
        )
    return frame, manifest


def _load_model(params: Params, job: Job, record: dict[str, Any]) -> Any:
    path = job.directory(params) / MODEL_FILE
    if not path.is_file() or sha256_file(path) != record["fit"]["model_sha256"]:
        raise TrainingError(f"{path} is missing or changed since `fit`: run it again")
    # Our own file, written by `fit` and checked against its recorded hash just above.
    features.accept_old_pickles()
    return pickle.loads(path.read_bytes())


def build_table(params: Params, jobs: list[Job]) -> list[dict[str, Any]]:
    """Build and check each job's modelling table; pin the test set if there is none yet."""
    if not jobs:
        log.info(
            "nothing to train: the cadence (train.first_version, train.every) asks for no new model"
        )
        return []
    catalog = Catalog(params.catalog_dir).load(params.dataset.name)
    out = []
    for job in jobs:
        started = time.perf_counter()
        version = catalog.version(job.data_version)
        name = f"{params.dataset.name}@{version.version}"
        table = checked_table(params, read_version(params, version), name)
        if testset.load_manifest(params) is None:
            pinned = testset.pin(table, params, datetime.now(UTC).isoformat(timespec="seconds"))
            log.info("pinned the test set: %d target rows, %s", pinned.target_rows, pinned.sha256)
        _, manifest = testset.load(params)
        history, rows = testset.training_view(table, manifest, params)  # checks the embargo
        _check_enough_rows(params, name, table, history, rows)
        data = parquet_bytes(table)
        digest = sha256_bytes(data)
        job.directory(params).mkdir(parents=True, exist_ok=True)
        with atomic_path(job.directory(params) / TABLE_FILE) as tmp:
            tmp.write_bytes(data)
        values = {
            "data_version": version.version,
            "data_content_hash": version.content_hash,
            "data_dvc_md5": version.dvc_md5,
            "table_sha256": digest,
            "table_rows": len(table),
            "train_rows": int(rows.sum()),
            "test_set_hash": manifest.sha256,
            "test_set_version": manifest.version,
            "seconds": time.perf_counter() - started,
        }
        _save(params, job, "build_table", values)
        log.info(
            "%s: table of %s rows (%s to train on) passed `%s`; test set %s",
            _label(params, job),
            f"{len(table):,}",
            f"{int(rows.sum()):,}",
            params.table.suite,
            manifest.sha256[:12],
        )
        out.append(job.ref() | {"table_sha256": digest[:16]})
    return out


def _check_enough_rows(
    params: Params, name: str, table: pd.DataFrame, history: pd.DataFrame, rows: pd.Series
) -> None:
    """Enough rows to fit once the pinned test set and its embargo are left out; otherwise a
    data error naming the settings that decide it."""
    usable = int((rows & history[TARGET].notna()).sum())
    if usable >= forecasting.MIN_TRAINING_ROWS:
        return
    known = int(table[TARGET].notna().sum())
    raise TableCheckError(
        f"{name}: only {usable} of its {known} rows may train, fewer than the "
        f"{forecasting.MIN_TRAINING_ROWS} a fit needs: the pinned test set (test_set.months "
        f"{params.test_set.months}, a week each) and its embargo (test_set.embargo "
        f"{params.test_set.embargo}) remove {known - usable}; start training on a later version "
        f"(train.first_version, now {params.train.first_version})"
        + (" or set test_set.embargo: values" if params.test_set.embargo == "rows" else "")
    )


def fit(params: Params, jobs: list[Job]) -> list[dict[str, Any]]:
    """Fit the Pipeline on each table's training rows (no test week, nor anything reading one)."""
    out = []
    with forecasting.compute_threads(params):
        for job in jobs:
            record = _step(params, job, "build_table")
            started = time.perf_counter()
            table = _load_table(params, job, record)
            _, manifest = _load_test_set(params, record)
            history, rows = testset.training_view(table, manifest, params)
            chosen, trials = selection.select(params, history, rows)  # train.candidates, if any
            pipeline = forecasting.fit(forecasting.make_pipeline(chosen), history, rows)
            data = pickle.dumps(pipeline, protocol=5)
            profile, detector = reference.build(params, pipeline, history, rows)
            files = {
                MODEL_FILE: data,
                reference.REFERENCE_FILE: profile,
                reference.OUTLIERS_FILE: detector,
            }
            for name, content in files.items():
                with atomic_path(job.directory(params) / name) as tmp:
                    tmp.write_bytes(content)
            digest = sha256_bytes(data)
            seconds = time.perf_counter() - started
            log.info(
                "%s: fitted on %s rows in %.1f s; model sha256 %s",
                _label(params, job),
                f"{int(rows.sum()):,}",
                seconds,
                digest[:12],
            )
            _save(
                params,
                job,
                "fit",
                {
                    "model_sha256": digest,
                    "reference_sha256": sha256_bytes(profile),
                    "outliers_sha256": sha256_bytes(detector),
                    "seconds": seconds,
                    "estimator": chosen.train.estimator,
                    "estimator_params": chosen.train.estimator_params,
                    "preprocess": chosen.train.preprocess,
                    "candidates": trials,
                },
            )
            out.append(job.ref() | {"model_sha256": digest[:16]})
    return out


def evaluate(params: Params, jobs: list[Job]) -> list[dict[str, Any]]:
    """Score each model and both baselines on the pinned test set, and backtest it."""

    out = []
    with forecasting.compute_threads(params):
        for job in jobs:
            record = _step(params, job, "fit")
            started = time.perf_counter()
            table = _load_table(params, job, record)
            test_frame, manifest = _load_test_set(params, record)
            evaluation = forecasting.evaluate(_load_model(params, job, record), test_frame, params)
            history, rows = testset.training_view(table, manifest, params)
            walked = walkforward.last_months(history, rows, params)
            steps = walked.steps
            metrics = evaluation.flat() | {
                "backtest_mae": walked.overall["model"]["mae"],
                "backtest_wape": walked.overall["model"]["wape"],
                **{
                    f"backtest_mae_step_{int(step):02d}": float(mae)
                    for step, mae in zip(steps["step"], steps["model_mae"], strict=True)
                },
            }
            values = {
                "evaluation": asdict(evaluation),
                "metrics": metrics,
                "backtest": {"cutoff": walked.start[:10], "steps": steps.to_dict(orient="records")},
                "seconds": time.perf_counter() - started,
            }
            _save(params, job, "evaluate", values)
            log.info(
                "%s: test wape %.4f (%s), backtest wape %.4f",
                _label(params, job),
                metrics["test_wape"],
                ", ".join(f"{k} {v['wape']:.4f}" for k, v in evaluation.baselines.items()),
                metrics["backtest_wape"],
            )
            out.append(job.ref() | _headline(metrics))
    return out


def gate(params: Params, jobs: list[Job]) -> list[dict[str, Any]]:
    """The promotion gate, job by job in order: each is judged against the champion it would
    replace, which is the previous job's model if that one passed.

    A job already registered keeps the verdict it was registered with, so deciding again after
    `register` (an Airflow task cleared and re-run) changes nothing.
    """
    out = []
    registered = _registered(params)
    with forecasting.compute_threads(params):
        champion: forecasting.Evaluation | None = None
        champion_known = False
        for job in jobs:
            record = _step(params, job, "evaluate")
            started = time.perf_counter()
            challenger = forecasting.Evaluation(**record["evaluate"]["evaluation"])
            existing = registered.get((job.data_version, job.config_hash))
            if existing is not None:
                promote = existing.tags.get("gate") == "promoted"
                verdict = json.loads(existing.tags.get("gate_reasons", "[]"))
            else:
                if not champion_known:
                    test_frame, manifest = _load_test_set(params, record)
                    champion = champion_evaluation(params, test_frame, manifest.sha256)
                    champion_known = True
                promote, verdict = gate_verdict(params, challenger, champion)
            if promote:
                champion, champion_known = challenger, True
            values = {
                "promote": promote,
                "verdict": verdict,
                "seconds": time.perf_counter() - started,
            }
            _save(params, job, "gate", values)
            log.info(
                "%s: gate %s%s: %s",
                _label(params, job),
                "passed" if promote else "failed",
                " (as registered)" if existing is not None else "",
                "; ".join(verdict),
            )
            out.append(job.ref() | {"promote": promote})
    return out


def register(params: Params, jobs: list[Job], by: str) -> list[TrainResult]:
    """Log each job's run and model to MLflow, register it, and promote it if the gate said so.

    A job already registered is not registered twice, and a version is promoted only once:
    running this again leaves the registry and the alias log as they are, and finishes what a
    crash left half done (an alias change, a promotion, a run still marked RUNNING).
    """
    results = []
    registry.recover(params)
    registered = _registered(params)
    for job in jobs:
        record = _step(params, job, "gate")
        started = time.perf_counter()
        decision = record["gate"]
        version = registered.get((job.data_version, job.config_hash))
        new = version is None
        if version is None:
            version = _log_and_register(params, job, record, by)
        _end_orphan_runs(params, job, str(version.run_id))
        number = str(version.version)
        if decision["promote"] and _may_promote(params, version):
            registry.promote(params, number, "gate passed: " + "; ".join(decision["verdict"]), by)
            outcome = f"promoted to {registry.CHAMPION}"
        else:
            # Passed but not promoted now: promoted before, or a person moved the aliases since.
            outcome = "aliases unchanged" if decision["promote"] else "not promoted (gate failed)"
        log.info(
            "%s: model version %s %s (run %s); %s",
            _label(params, job),
            number,
            "registered" if new else "was registered already",
            version.run_id,
            outcome,
        )
        _save(params, job, "register", {"model_version": number, "run_id": version.run_id})
        seconds = {step: record[step]["seconds"] for step in ("build_table", "fit", "evaluate")}
        results.append(
            TrainResult(
                data_version=job.data_version,
                model_version=number,
                run_id=str(version.run_id),
                test_set_hash=record["build_table"]["test_set_hash"],
                metrics=record["evaluate"]["metrics"],
                promoted=decision["promote"],
                verdict=decision["verdict"],
                seconds=seconds
                | {"gate": decision["seconds"], "register": time.perf_counter() - started},
            )
        )
    return results


def _may_promote(params: Params, version: ModelVersion) -> bool:
    """False if the version's promotion happened already, or if an alias changed after it was
    registered (a rollback by a person since: theirs is the later decision)."""
    journal = registry.changes(params)
    if str(version.version) in registry.promoted_versions(params, journal):
        return False
    last = str(journal[-1].number) if journal else "0"
    seen = version.tags.get(ALIAS_CHANGE_TAG, last)
    if seen != last:
        log.warning(
            "version %s passed the gate but the aliases changed after it was registered: "
            "not promoting it (`powerops model rollback --to %s` does it by hand)",
            version.version,
            version.version,
        )
        return False
    return True


def _end_orphan_runs(params: Params, job: Job, registered_run: str) -> None:
    """End the job's runs still marked RUNNING: the registered one finished its work, any other
    belongs to an attempt that was killed."""
    for run in registry.running_runs(params):
        if run.data.tags.get("job") != job.name:
            continue
        status = "FINISHED" if run.info.run_id == registered_run else "KILLED"
        registry.end_run(params, run.info.run_id, status)
        log.warning(
            "run %s of training %s was left RUNNING: ended %s", run.info.run_id, job.name, status
        )


def _log_and_register(params: Params, job: Job, record: dict[str, Any], by: str) -> ModelVersion:
    """The MLflow run (params, metrics, inputs, backtest, gate), the logged model, its version."""
    import mlflow

    evaluation, decision = record["evaluate"]["evaluation"], record["gate"]
    test_frame, manifest = _load_test_set(params, record)
    tags = _run_tags(params, job, record, manifest, by)
    journal = registry.changes(params)
    with (
        registry.asking(params, f"record training {job.name}"),
        # Tagged as it is created: a run killed at any point can be told by its `job` tag.
        mlflow.start_run(
            experiment_id=registry.experiment_id(params),
            run_name=f"data-v{job.data_version}",
            tags=tags,
        ),
    ):
        _log_run(params, job, record, test_frame, manifest)
        model_uri = _log_model(_load_model(params, job, record), test_frame, manifest, params)
        crash_point("register.before_version")
        # One call creates the version with all its tags: a crash leaves it whole or absent.
        version = mlflow.register_model(
            model_uri,
            params.mlflow.model_name,
            tags=tags
            | {
                "evaluation": evaluation_tag(evaluation),
                "test_wape": f"{evaluation['model']['wape']:.4f}",
                "gate": "promoted" if decision["promote"] else "not promoted",
                "gate_reasons": json.dumps(decision["verdict"]),
                ALIAS_CHANGE_TAG: str(journal[-1].number) if journal else "0",
            },
        )
        crash_point("register.after_version")
        return version


def _run_tags(
    params: Params,
    job: Job,
    record: dict[str, Any],
    manifest: testset.TestSetManifest,
    by: str,
) -> dict[str, str]:
    """What a run and its model version say about their lineage."""
    built = record["build_table"]
    return {
        "data_version": str(job.data_version),
        "data_content_hash": built["data_content_hash"],
        "data_dvc_md5": built["data_dvc_md5"],
        "test_set_hash": manifest.sha256,
        "test_set_version": str(manifest.version),
        "git_commit": git_commit(params.root),
        "config_hash": job.config_hash,
        "trained_by": by,
        "job": job.name,
    }


def _log_candidates(params: Params, job: Job, trials: list[dict[str, Any]]) -> None:
    """Each candidate model selection scored, as a child run of the training's run."""
    import mlflow

    for number, trial in enumerate(trials, 1):
        name = trial["estimator"].rpartition(".")[2]
        tags = {"kind": "candidate", "candidate_of": job.name, "chosen": str(trial["chosen"])}
        with mlflow.start_run(
            experiment_id=registry.experiment_id(params),  # else the default experiment
            run_name=f"candidate {number} {name}",
            nested=True,
            tags=tags,
        ):
            mlflow.log_params(
                {"estimator": trial["estimator"], "preprocess": trial["preprocess"]}
                | {f"estimator.{k}": v for k, v in trial["estimator_params"].items()}
            )
            mlflow.log_metric(f"cv_{params.gate.metric}", trial["score"])
            for fold, score in enumerate(trial["folds"], 1):
                mlflow.log_metric(f"cv_fold_{params.gate.metric}", score, step=fold)


def _log_run(
    params: Params,
    job: Job,
    record: dict[str, Any],
    test_frame: pd.DataFrame,
    manifest: testset.TestSetManifest,
) -> None:
    """Params, metrics, the training and test inputs, the backtest, the gate's verdict and
    the monitoring reference, into the active run."""
    import mlflow
    from mlflow.data.pandas_dataset import from_pandas

    evaluated, decision, fitted = record["evaluate"], record["gate"], record["fit"]
    estimator = fitted.get("estimator", params.train.estimator)
    estimator_params = fitted.get("estimator_params", params.train.estimator_params)
    mlflow.log_params(
        {
            "estimator": estimator,
            **{f"estimator.{k}": v for k, v in estimator_params.items()},
            "preprocess": fitted.get("preprocess", params.train.preprocess),
            "calendar": params.forecast.calendar,
            "frequency": params.table.frequency,
            "horizon": params.forecast.horizon,
            "lags": list(params.forecast.lags),
            "windows": list(params.forecast.windows),
            "train_rows": record["build_table"]["train_rows"],
            "embargo": params.test_set.embargo,
            "backtest_cutoff": evaluated["backtest"]["cutoff"],
        }
    )
    mlflow.log_metrics(evaluated["metrics"])
    table = from_pandas(
        _load_table(params, job, record),
        source=str(params.dataset_dir),
        name=f"{params.dataset.name}@{job.data_version}",
        targets=TARGET,
    )
    mlflow.log_input(table, context="training")
    pinned = from_pandas(
        test_frame,
        source=str(testset.paths(params)[0]),
        name=f"pinned_test_set@{manifest.version}",
        targets=TARGET,
    )
    mlflow.log_input(pinned, context="testing")
    mlflow.log_dict(evaluated["backtest"], "backtest.json")
    _log_candidates(params, job, fitted.get("candidates", []))
    mlflow.log_dict({"promote": decision["promote"], "verdict": decision["verdict"]}, "gate.json")
    for name, step_key in (
        (reference.REFERENCE_FILE, "reference_sha256"),
        (reference.OUTLIERS_FILE, "outliers_sha256"),
    ):
        path = job.directory(params) / name
        if sha256_file(path) != record["fit"][step_key]:
            raise TrainingError(f"{path} changed since `fit`: run it again")
        mlflow.log_artifact(str(path), artifact_path=reference.ARTIFACT_DIR)


def _log_model(
    pipeline: Any, test_frame: pd.DataFrame, manifest: testset.TestSetManifest, params: Params
) -> str:
    """Log the Pipeline with its signature and an input example; return its model URI."""
    import mlflow.sklearn
    import numpy as np
    import pandas as pd
    import sklearn
    from mlflow.models import infer_signature

    example = input_example(test_frame, manifest, params)
    info = mlflow.sklearn.log_model(
        pipeline,
        name="model",
        signature=infer_signature(example, pipeline.predict(example)),
        input_example=example,
        # Our transformers are top-level classes in an installed package, which skops
        # (MLflow's default) refuses; cloudpickle stores them by reference.
        serialization_format="cloudpickle",
        # Explicit requirements: inferring them costs seconds per model (docs/benchmarks.md).
        pip_requirements=[
            f"scikit-learn=={sklearn.__version__}",
            f"pandas=={pd.__version__}",
            f"numpy=={np.__version__}",
        ],
    )
    return str(info.model_uri)


def train(
    params: Params, data_version: int | None = None, by: str = "powerops"
) -> list[TrainResult]:
    """Every training the cadence asks for (or exactly `data_version`), all steps in order."""
    jobs = plan(params, data_version)
    if not jobs:
        return []
    build_table(params, jobs)
    fit(params, jobs)
    evaluate(params, jobs)
    gate(params, jobs)
    return register(params, jobs, by)


def _headline(metrics: dict[str, float]) -> dict[str, Any]:
    return {
        "test_wape": metrics.get("test_wape"),
        "test_seasonal_naive_wape": metrics.get("test_seasonal_naive_wape"),
        "backtest_wape": metrics.get("backtest_wape"),
    }


def summary(result: TrainResult) -> dict[str, Any]:
    return {
        "data_version": result.data_version,
        "model_version": result.model_version,
        "promoted": result.promoted,
        **_headline(result.metrics),
    }


def replace_test_set(params: Params, reason: str) -> testset.TestSetManifest:
    """Deliberately re-pin the test set from the latest data; older scores become incomparable."""
    record = Catalog(params.catalog_dir).load(params.dataset.name)
    if record.latest is None:
        raise TrainingError(f"dataset {record.name} has no versions yet")
    table = checked_table(params, read_version(params, record.latest), f"{record.name}@latest")
    manifest = testset.pin(
        table, params, datetime.now(UTC).isoformat(timespec="seconds"), reason, replace=True
    )
    mlflow_client = registry.client(params)
    for model_version in registry.versions(params):
        if model_version.tags.get("test_set_hash") != manifest.sha256:
            with registry.asking(params, f"tag version {model_version.version}"):
                mlflow_client.set_model_version_tag(
                    params.mlflow.model_name,
                    model_version.version,
                    "scores_comparable",
                    f"no: scored on test set v{model_version.tags.get('test_set_version', '?')}, "
                    f"replaced by v{manifest.version} ({reason})",
                )
    return manifest
