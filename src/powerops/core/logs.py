"""Quiet third-party logs: what a task log, the CLI and `make demo` show is powerops' own news.

Airflow 3's task runner logs whatever a task writes to stderr at level ERROR, so a progress
bar, a library's notice or a warning printed there reads as a failure in a successful task.
`quiet()` keeps libraries at WARNING, turns MLflow's progress bars off, sends MLflow's records
through the process's logging instead of its own stderr handler, and ignores the few warnings
we know and cannot fix, each by message, category and module. It runs on `import powerops`
(powerops/__init__.py), so no entry point can forget it; it imports no library and is
idempotent, so a module calls it again after importing a library that sets its own loggers.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import sys
import warnings

# Loggers whose INFO lines are chatter: Great Expectations' "Skipping registering function ..."
# made ~220 of the ~240 lines of a `validate` task; MLflow and alembic describe routine work.
# `great_expectations.data_context.types.base` sets itself to INFO when imported.
QUIET_LOGGERS = (
    "great_expectations",
    "great_expectations.data_context.types.base",
    "mlflow",
    "alembic",
)
# Read by MLflow at each download or upload: its tqdm bars on stderr are ERROR lines in a task.
ENVIRONMENT = {"MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}
# (message, category, module) of warnings we know and cannot act on; the module is the one the
# warning is attributed to.
KNOWN_WARNINGS: tuple[tuple[str, type[Warning], str], ...] = (
    # Airflow compiles .airflowignore's glob rules with pathspec's deprecated class each time
    # it lists dags/ (74 times in `make demo`); pathspec warns again inside.
    (
        r"GitWildMatchPattern \('gitwildmatch'\) is deprecated",
        DeprecationWarning,
        r"(airflow|pathspec)\.",
    ),
    # MLflow registers its local-file dataset source twice, so every local path is "ambiguous".
    (r"The specified dataset source can be interpreted in multiple ways", UserWarning, r"mlflow\."),
    # `dag.test()` (make demo) serves Airflow's execution API through FastAPI's test client.
    (r"Using `httpx` with `starlette.testclient` is deprecated", UserWarning, r"fastapi\."),
)
# Records dropped from one logger: (logger, message prefix). Cloudpickle is chosen on purpose
# (powerops.model.training._log_model says why); MLflow warns about it at every registration.
KNOWN_RECORDS = (
    ("mlflow.sklearn", "Saving scikit-learn models in the pickle or cloudpickle"),
    # Data Docs keep every validation's page (powerops.data.gxdocs); the index, built from one
    # process's results, warns once per page of another process at every validation.
    ("great_expectations.render.renderer.site_builder", "Validation result not found"),
)
# The loggers MLflow gives a handler of its own, writing to stderr, when imported.
MLFLOW_HANDLED = ("mlflow", "alembic", "huey", "sqlalchemy.engine")


class DropPrefix(logging.Filter):
    """Drops the records whose message starts with `prefix`."""

    def __init__(self, prefix: str) -> None:
        super().__init__()
        self.prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.prefix)


def quiet() -> None:
    """Third-party logs at WARNING, MLflow's bars and notices off, known warnings ignored."""
    for name, value in ENVIRONMENT.items():
        os.environ.setdefault(name, value)
    for message, category, module in KNOWN_WARNINGS:
        # Inserted first, so it wins over the filters Airflow adds for its own modules.
        warnings.filterwarnings("ignore", message=message, category=category, module=module)
    for name, prefix in KNOWN_RECORDS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, DropPrefix) and f.prefix == prefix for f in logger.filters):
            logger.addFilter(DropPrefix(prefix))
    _reroute_mlflow()
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def _reroute_mlflow() -> None:
    """Once MLflow is imported: its records go through the process's handlers, at their own
    level (MLflow's handler writes everything to stderr), and its printed notices ("Created
    version '3' of model ...") are dropped; powerops logs what it registered."""
    mlflow_logging = sys.modules.get("mlflow.utils.logging_utils")
    if mlflow_logging is None:
        return
    # Importing this module turns MLflow's printing back on (it mutes itself while building a
    # schema); logging the first model imports it. Imported now, it cannot undo us later.
    with contextlib.suppress(ImportError):
        importlib.import_module("mlflow.types.responses")
    stream = mlflow_logging.MLFLOW_LOGGING_STREAM
    for name in MLFLOW_HANDLED:
        logger = logging.getLogger(name)
        theirs = [h for h in logger.handlers if getattr(h, "stream", None) is stream]
        if theirs:
            logger.handlers = [h for h in logger.handlers if h not in theirs]
            logger.propagate = True
    stream.enabled = False
