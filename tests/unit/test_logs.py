"""powerops.core.logs: a successful task's log holds powerops' news, not libraries' chatter.

Airflow logs a task's stderr at ERROR, so each check is on what reaches a handler or stderr.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from powerops.core import logs

DAGS = Path(__file__).resolve().parents[2] / "dags"
GE_CHATTER = ("great_expectations._docs_decorators", "great_expectations.data_context.types.base")


def test_importing_powerops_quiets_great_expectations() -> None:
    code = (
        "import logging, sys; logging.basicConfig(level=logging.INFO, stream=sys.stdout); "
        "import powerops; "
        f"logging.getLogger({GE_CHATTER[0]!r}).info('Skipping registering function f'); "
        "logging.getLogger('powerops.data.stages').info('batch 2007-01 written')"
    )
    shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert shown.stdout.splitlines() == ["INFO:powerops.data.stages:batch 2007-01 written"]


def test_great_expectations_info_is_dropped_and_its_warnings_kept(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # What importing GE does to one of its loggers; quiet() runs again after that import.
    logging.getLogger(GE_CHATTER[1]).setLevel(logging.INFO)
    logs.quiet()
    with caplog.at_level(logging.INFO):
        for name in GE_CHATTER:
            logging.getLogger(name).info("Skipping registering function f")
        logging.getLogger(GE_CHATTER[0]).warning("a real problem")
    assert [record.getMessage() for record in caplog.records] == ["a real problem"]


def test_airflow_listing_the_dags_folder_warns_nothing_known() -> None:
    from airflow.utils.file import list_py_file_paths

    def listed(quiet: bool) -> list[str]:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")  # every warning, as `-W always` would show them
            # What importing Airflow adds in front: its own modules' deprecations shown.
            warnings.filterwarnings("default", category=DeprecationWarning, module="airflow")
            if quiet:
                logs.quiet()
            assert list_py_file_paths(DAGS)
        return [str(w.message) for w in caught if "GitWildMatchPattern" in str(w.message)]

    assert listed(quiet=False), "Airflow no longer warns about GitWildMatchPattern: drop the filter"
    assert listed(quiet=True) == []


def test_mlflow_bars_notices_and_known_warning_are_off_and_its_warnings_logged(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.delenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", raising=False)
    from mlflow.utils.file_utils import ArtifactProgressBar
    from mlflow.utils.logging_utils import eprint

    logs.quiet()
    import mlflow.pyfunc  # noqa: F401  (as logging the first model does: MLflow unmutes itself)

    bar = ArtifactProgressBar.files(desc="Downloading artifacts", total=2)
    with bar:
        bar.update()
    assert bar.pbar is None
    with caplog.at_level(logging.INFO):
        eprint("Created version '3' of model 'household_power_forecaster'.")
        logging.getLogger("mlflow.store.db.utils").info("Creating initial MLflow database tables")
        logging.getLogger("mlflow.sklearn").warning(
            "Saving scikit-learn models in the pickle or cloudpickle format requires caution"
        )
        logging.getLogger("mlflow.tracking").warning("a real problem")
    assert capsys.readouterr().err == ""  # nothing on stderr, so no ERROR line in a task
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("WARNING", "a real problem")
    ]


def test_quiet_is_idempotent() -> None:
    logs.quiet()
    filters, dropping = len(warnings.filters), list(logging.getLogger("mlflow.sklearn").filters)
    logs.quiet()
    assert len(warnings.filters) == filters
    assert logging.getLogger("mlflow.sklearn").filters == dropping
