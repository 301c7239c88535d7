"""The `powerops` command: one entry point with a subcommand per stage and catalog query.

Every subcommand reads params.yaml (or `--params`), calls a stage function and prints a short
summary. A command that changes the workspace holds its lock (powerops.ops.lock) while it runs;
one that only reads it never waits. Every failure ends with one line on stderr naming the cause
(`-v` adds the traceback) and an exit status: 1 when the command failed, 2 for a usage or
configuration error, 75 when another writer held the workspace for longer than
`state.lock_wait_seconds` (try again later).
"""

from __future__ import annotations

import argparse
import getpass
import json
import logging
import os
import socket
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from powerops.core.config import DEFAULT_PARAMS_FILE, Params, load_params
from powerops.core.errors import PowerOpsError
from powerops.core.months import Month, MonthError, parse_day, parse_month
from powerops.data.catalog import Catalog, DatasetRecord, parse_ref

log = logging.getLogger("powerops")


def _month(text: str) -> Month:
    try:
        return parse_month(text)
    except MonthError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _months(args: argparse.Namespace) -> list[Month] | None:
    return list(args.month) if args.month else None


# --- commands ---------------------------------------------------------------------------


def cmd_ingest(params: Params, args: argparse.Namespace) -> int:
    from powerops.data import stages

    results = stages.ingest(params, _months(args))
    written = sum(result.changed for result in results)
    print(
        f"ingested {len(results)} month(s) into {params.raw_dir}: {written} new, "
        f"{len(results) - written} unchanged"
    )
    return 0


def cmd_validate(params: Params, args: argparse.Namespace) -> int:
    from powerops.data import stages

    reports = stages.validate(params, _months(args))
    print(f"validated {len(reports)} batch(es): all passed `{params.validation.raw_suite}`")
    return 0


def cmd_quarantine_list(params: Params, args: argparse.Namespace) -> int:
    from powerops.data.quarantine import Quarantine

    quarantine = Quarantine(params.quarantine_dir)
    months = quarantine.months()
    if not months:
        print(f"quarantine is empty ({params.quarantine_dir})")
        return 0
    for month in months:
        record = quarantine.load(month)
        assert record is not None
        print(
            f"{month}  {record.status:<11}  {record.summary.get('failed', '?')} failed  "
            f"{record.history[-1]['at'] if record.history else ''}"
        )
    return 0


def cmd_quarantine_show(params: Params, args: argparse.Namespace) -> int:
    from powerops.data.quarantine import Quarantine, QuarantineError

    quarantine = Quarantine(params.quarantine_dir)
    record = quarantine.load(str(args.month))
    if record is None:
        raise QuarantineError(f"batch {args.month} is not in quarantine")
    print(f"batch {record.month}: {record.status}")
    print(f"  data:       {quarantine.batch(record.month)}")
    print(f"  data docs:  {record.summary.get('data_docs') or 'none'}")
    print(f"  reason:     {record.reason}")
    for event in record.history:
        print(f"  {event['at']}  {event['event']}: {event['detail']}")
    return 0


def cmd_quarantine_revalidate(params: Params, args: argparse.Namespace) -> int:
    from powerops.data import stages

    report = stages.revalidate(params, args.month)
    print(
        f"batch {args.month} passed {report.evaluated} expectations; released from quarantine "
        "(`powerops publish` adds it as the next version)"
    )
    return 0


def cmd_quarantine_reject(params: Params, args: argparse.Namespace) -> int:
    from powerops.data import stages

    stages.reject(params, args.month, args.reason)
    print(f"batch {args.month} rejected for good: {args.reason}")
    return 0


def _actor() -> str:
    return os.environ.get("POWEROPS_ACTOR") or getpass.getuser()


def cmd_train(params: Params, args: argparse.Namespace) -> int:
    from powerops.model import forecasting, registry, training

    finished = registry.recover(params)
    if finished is not None:
        moves = ", ".join(f"{m.alias} -> version {m.to_version}" for m in finished.moves)
        print(f"finished the {finished.kind} a crash interrupted: {moves}")
    results = training.train(params, args.data_version, by=_actor())
    if not results and finished is None:
        print(
            "nothing to train: every dataset version the cadence asks for has a model "
            "for this configuration (or fewer than train.first_version versions exist)"
        )
        return 0
    for result in results:
        m = result.metrics
        outcome = "PROMOTED to champion" if result.promoted else "not promoted"
        scored = ", ".join(
            f"{name.replace('_', ' ')} {m[f'test_{name}_wape']:.4f}"
            for name in forecasting.BASELINES
            if f"test_{name}_wape" in m
        )
        print(
            f"data v{result.data_version} -> model v{result.model_version}: test wape "
            f"{m['test_wape']:.4f} ({scored}), backtest wape {m['backtest_wape']:.4f}: {outcome}"
        )
        for reason in result.verdict:
            print(f"    {reason}")
    return 0


def cmd_backtest(params: Params, args: argparse.Namespace) -> int:
    from powerops.model import backtest

    chosen = {key: getattr(args, key) for key in ("start", "end", "refit_every")}
    result = backtest.run(backtest.overridden(params, **chosen), by=_actor())
    if isinstance(result, str):
        print(result)
        return 0
    print(backtest.summary(result))
    print(f"reports in {params.backtest_dir}: scores.json, steps.csv, steps.png; an MLflow run")
    return 0


def cmd_monitor(params: Params, args: argparse.Namespace) -> int:
    from powerops.data.datasets import day_after_latest
    from powerops.monitor import monitoring

    today = parse_day(args.date) if args.date else day_after_latest(params)
    try:
        report = monitoring.monitor(params, today)
    except monitoring.NoChampionError as exc:
        # Not a failure: `dvc repro` runs this stage before the first model is trained. The
        # stage's output is the reports folder, so it exists either way.
        params.monitor_reports_dir.mkdir(parents=True, exist_ok=True)
        print(f"nothing to monitor yet: {exc}")
        return 0
    for line in monitoring.summary_lines(report):
        print(line)
    folder = params.monitor_reports_dir
    print(f"report: {folder / report.date / 'report.html'} (latest: {folder / 'latest'})")
    return 0


def cmd_score(params: Params, args: argparse.Namespace) -> int:
    from powerops.data.datasets import day_after_latest
    from powerops.serve import scoring

    day = parse_day(args.date) if args.date else day_after_latest(params)
    result = scoring.score(params, day, args.known)
    state = "wrote" if result.written else "already had"
    print(f"{state} the forecast of {result.day} by model v{result.model_version}: {result.path}")
    return 0


def cmd_serve(params: Params, args: argparse.Namespace) -> int:
    from powerops.serve import serving

    serving.serve(params, args.host, args.port, args.workers)
    return 0


def cmd_testset_show(params: Params, args: argparse.Namespace) -> int:
    from powerops.model import testset

    manifest = testset.load_manifest(params)
    if manifest is None:
        print("no pinned test set yet: `powerops train` pins it from the first year of data")
        return 1
    testset.load(params)  # asserts the hash
    print(f"pinned test set v{manifest.version}: sha256 {manifest.sha256}")
    print(f"  design:  {manifest.design}")
    print(f"  weeks:   {', '.join(manifest.weeks)}")
    print(
        f"  rows:    {manifest.target_rows} target rows at {manifest.frequency}, "
        f"{manifest.lookback} periods of history per week"
    )
    print(
        f"  created: {manifest.created_at}"
        + (f" ({manifest.replaced_reason})" if manifest.replaced_reason else "")
    )
    return 0


def cmd_testset_replace(params: Params, args: argparse.Namespace) -> int:
    from powerops.model import training

    manifest = training.replace_test_set(params, args.reason)
    print(
        f"pinned test set v{manifest.version} (sha256 {manifest.sha256[:12]}): scores under "
        "earlier test sets are now marked not comparable"
    )
    return 0


def cmd_model_list(params: Params, args: argparse.Namespace) -> int:
    from powerops.model import registry

    found = registry.versions(params)
    if not found:
        print(f"no versions of {params.mlflow.model_name} yet")
        return 0
    held = registry.aliases(params)
    print(f"{'VER':>4}  {'DATA':>5}  {'TEST WAPE':>9}  {'TEST SET':<12}  {'GATE':<13}  ALIASES")
    for v in found:
        print(
            f"{v.version:>4}  {v.tags.get('data_version', '-'):>5}  "
            f"{v.tags.get('test_wape', '-'):>9}  {v.tags.get('test_set_hash', '')[:12]:<12}  "
            f"{v.tags.get('gate', '-'):<13}  {', '.join(held.get(str(v.version), []))}"
        )
    return 0


def cmd_model_show(params: Params, args: argparse.Namespace) -> int:
    from powerops.model import lineage

    print(lineage.lineage(params, str(args.version)))
    return 0


def cmd_model_rollback(params: Params, args: argparse.Namespace) -> int:
    from powerops.model import registry, testset

    manifest = testset.load_manifest(params)
    current = manifest.sha256 if manifest else ""
    old, new = registry.rollback(
        params,
        args.reason,
        args.to,
        current,
        force=args.force,
        expected_champion=args.expect_champion,
    )
    print(f"champion rolled back from version {old} to version {new}: {args.reason}")
    return 0


def cmd_up(params: Params, args: argparse.Namespace) -> int:
    from powerops.ops import stack

    started = stack.up(params, args.airflow_port, args.mlflow_port)
    print(f"Airflow  {started.airflow_url}  (user admin; password in {started.password_file})")
    print(f"MLflow   {started.mlflow_url}")
    print("logs in .run/logs/; `make down` stops both")
    return 0


def cmd_down(params: Params, args: argparse.Namespace) -> int:
    from powerops.ops import stack

    print("stopped the stack" if stack.down(params) else "the stack is not running")
    return 0


def cmd_publish(params: Params, args: argparse.Namespace) -> int:
    from powerops.data import stages

    versions = stages.publish(params, _months(args), push=not args.no_push)
    record = Catalog(params.catalog_dir).load(params.dataset.name)
    latest = record.latest
    print(
        f"published {len(versions)} new version(s) of {record.name}; "
        f"latest is version {latest.version if latest else 0}"
    )
    return 0


def cmd_data_checkout(params: Params, args: argparse.Namespace) -> int:
    from powerops.data import stages

    chosen = stages.checkout(params, args.version, args.dataset)
    print(
        f"restored {args.dataset or params.dataset.name}@{chosen.version} to "
        f"{params.dataset_dir} ({chosen.month_count} months, {chosen.rows:,} rows, "
        f"content {chosen.content_hash[:12]})"
    )
    return 0


def cmd_data_status(params: Params, args: argparse.Namespace) -> int:
    from powerops.data.datasets import content_hash, manifest

    record = Catalog(params.catalog_dir).load(params.dataset.name)
    current = content_hash(manifest(params.dataset_dir))
    match = next((v for v in record.versions if v.content_hash == current), None)
    latest = record.latest.version if record.latest else 0
    if match is None:
        print(
            f"{params.dataset_dir} matches no version of {record.name} (latest is {latest}); "
            "`powerops data checkout` restores one"
        )
        return 1
    note = "latest" if match.version == latest else f"latest is {latest}"
    print(f"{params.dataset_dir} holds {record.name}@{match.version} ({note})")
    return 0


def cmd_suite_draft(params: Params, args: argparse.Namespace) -> int:
    from powerops.data import suitedraft

    draft = suitedraft.draft(params, margin=args.margin)
    written = suitedraft.write(draft, params, force=args.force)
    for path, suite in zip(written, (draft.raw, draft.table), strict=True):
        print(f"drafted {path} ({len(suite['expectations'])} expectations)")
    print("what the file shows, for params.yaml:")
    for line in draft.findings:
        print(f"  {line}")
    print("a draft of dataset.columns (add units and descriptions):")
    print(draft.columns_yaml, end="")
    print("review both suites (every range is this file's), then commit them")
    return 0


def cmd_catalog_list(params: Params, args: argparse.Namespace) -> int:
    _print_table(Catalog(params.catalog_dir).all())
    return 0


def cmd_catalog_search(params: Params, args: argparse.Namespace) -> int:
    found = Catalog(params.catalog_dir).search(args.text or "", args.tag or [])
    if not found:
        print("no dataset matches")
        return 1
    _print_table(found)
    return 0


def cmd_catalog_show(params: Params, args: argparse.Namespace) -> int:
    name, version = parse_ref(args.ref or params.dataset.name)
    record = Catalog(params.catalog_dir).load(name)
    if args.json:
        data = record.version(version).model_dump() if version else record.model_dump()
        print(json.dumps(data, indent=2))
        return 0
    _print_record(record, version)
    return 0


# --- output -----------------------------------------------------------------------------


def _print_table(records: Sequence[DatasetRecord]) -> None:
    rows = [("DATASET", "VERSION", "MONTHS", "ROWS", "TAGS")]
    for record in records:
        latest = record.latest
        span = f"{latest.first_month}..{latest.last_month}" if latest else "-"
        rows.append(
            (
                record.name,
                str(latest.version) if latest else "-",
                span,
                f"{latest.rows:,}" if latest else "-",
                ", ".join(record.tags),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )


def _print_record(record: DatasetRecord, version: int | None) -> None:
    print(f"{record.name}: {record.description}")
    print(f"  owner:   {record.owner}")
    print(f"  tags:    {', '.join(record.tags)}")
    print(f"  license: {record.license}")
    for key, value in record.source.items():
        print(f"  source {key}: {value}")
    print("  schema:")
    for column in record.columns:
        unit = f" [{column.unit}]" if column.unit else ""
        print(f"    {column.name:<24} {column.dtype:<16}{unit} {column.description}")
    chosen = [record.version(version)] if version is not None else record.versions
    print(f"  versions ({len(record.versions)}):")
    print(f"    {'VER':>4}  {'ADDED':<8} {'MONTHS':<17} {'ROWS':>10}  {'CONTENT':<12}  CREATED")
    for v in chosen:
        print(
            f"    {v.version:>4}  {v.added.month:<8} {v.first_month}..{v.last_month} "
            f"{v.rows:>10,}  {v.content_hash[:12]}  {v.created_at}"
        )
    if version is not None:
        v = chosen[0]
        print(f"  content hash: {v.content_hash}")
        print(f"  dvc hash:     {v.dvc_md5}")
        print(f"  added batch:  {v.added.file} sha256 {v.added.sha256} ({v.added.rows:,} rows)")
        print(f"  validation:   {json.dumps(v.validation) if v.validation else 'not recorded'}")


# --- parser -----------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="powerops",
        description="Household electricity forecasting: ingest, version and catalogue data.",
    )
    parser.add_argument(
        "--params", default=DEFAULT_PARAMS_FILE, help="configuration file (default: %(default)s)"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug detail")
    parser.add_argument("-q", "--quiet", action="store_true", help="log warnings and errors only")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _data_commands(commands)
    _model_commands(commands)
    _serve_and_monitor_commands(commands)
    _ops_commands(commands)
    return parser


def _add(group: Any, name: str, handler: Callable[..., int], text: str) -> argparse.ArgumentParser:
    sub: argparse.ArgumentParser = group.add_parser(name, help=text, description=text)
    sub.set_defaults(handler=handler)
    return sub


def _group(commands: Any, name: str, text: str, description: str) -> Any:
    parser = commands.add_parser(name, help=text, description=description)
    return parser.add_subparsers(dest=f"{name}_command", required=True, metavar="COMMAND")


def _months_option(sub: argparse.ArgumentParser, what: str) -> None:
    sub.add_argument("--month", action="append", type=_month, metavar="YYYY-MM", help=what)


def _data_commands(commands: Any) -> None:
    """ingest, validate, publish, and the groups that inspect and decide on their data."""
    _months_option(
        _add(commands, "ingest", cmd_ingest, "write monthly raw batches from the source feed"),
        "ingest this month (repeatable); default ingest.start..ingest.through",
    )
    _months_option(
        _add(
            commands,
            "validate",
            cmd_validate,
            "run the Great Expectations suite on raw batches; quarantine and alert on failure",
        ),
        "validate only this month's batch (repeatable); default every raw batch",
    )
    publish = _add(
        commands,
        "publish",
        cmd_publish,
        "accept validated batches into new dataset versions (DVC snapshot, push, catalog)",
    )
    _months_option(publish, "publish only this month's batch (repeatable); default every one")
    publish.add_argument("--no-push", action="store_true", help="skip the push to the DVC remote")

    _quarantine_commands(commands)
    _dataset_commands(commands)
    suite = _group(
        commands,
        "suite",
        "Great Expectations suites for a new meter",
        "Draft a new meter's raw and table suites from its file, for review.",
    )
    draft = _add(
        suite,
        "draft",
        cmd_suite_draft,
        "write validation.raw_suite and table.suite drafted from the source file",
    )
    draft.add_argument(
        "--margin",
        type=float,
        default=0.2,
        help="widen each observed range by this share of its span (default: %(default)s)",
    )
    draft.add_argument("--force", action="store_true", help="replace suites that say otherwise")


def _quarantine_commands(commands: Any) -> None:
    """quarantine list|show|revalidate|reject."""
    held = _group(
        commands,
        "quarantine",
        "batches that failed validation: list, show, re-validate, reject",
        "Decide what happens to batches that failed validation.",
    )
    _add(held, "list", cmd_quarantine_list, "every quarantined batch with its status")
    _add(held, "show", cmd_quarantine_show, "why a batch failed, and its history").add_argument(
        "month", type=_month, metavar="YYYY-MM"
    )
    _add(
        held,
        "revalidate",
        cmd_quarantine_revalidate,
        "validate the quarantined copy again after a fix; release it if it passes",
    ).add_argument("month", type=_month, metavar="YYYY-MM")
    reject = _add(held, "reject", cmd_quarantine_reject, "reject a quarantined batch for good")
    reject.add_argument("month", type=_month, metavar="YYYY-MM")
    reject.add_argument("--reason", required=True, help="why, for the record")


def _dataset_commands(commands: Any) -> None:
    """data checkout|status; catalog list|show|search."""
    data = _group(
        commands,
        "data",
        "dataset working copy: restore versions, check status",
        "Work with the dataset's working copy.",
    )
    checkout = _add(
        data,
        "checkout",
        cmd_data_checkout,
        "restore the dataset directory to a version, byte-identical (cache, then remote)",
    )
    checkout.add_argument("version", type=int, nargs="?", help="version number (default: latest)")
    checkout.add_argument("--dataset", help="dataset name (default: dataset.name in params.yaml)")
    _add(data, "status", cmd_data_status, "which version the dataset directory holds")

    catalog = _group(
        commands,
        "catalog",
        "list, show and search documented datasets",
        "Query the dataset catalog.",
    )
    _add(catalog, "list", cmd_catalog_list, "every dataset with its latest version")
    show = _add(catalog, "show", cmd_catalog_show, "a dataset's documentation and versions")
    show.add_argument(
        "ref",
        nargs="?",
        metavar="NAME[@VERSION]",
        help="e.g. household_power@5; default: the configured dataset (dataset.name)",
    )
    show.add_argument("--json", action="store_true", help="print the catalog record as JSON")
    search = _add(
        catalog,
        "search",
        cmd_catalog_search,
        "datasets whose description, tags or column names match TEXT",
    )
    search.add_argument("text", nargs="?", help="case-insensitive text to look for")
    search.add_argument("--tag", action="append", help="require this tag (repeatable)")


def _backtest_command(commands: Any) -> None:
    walk = _add(
        commands,
        "backtest",
        cmd_backtest,
        "walk-forward backtest of the configured model over a fixed period (backtest.*)",
    )
    walk.add_argument("--start", type=parse_day, help="first origin, YYYY-MM-DD")
    walk.add_argument("--end", type=parse_day, help="last origin, YYYY-MM-DD")
    walk.add_argument(
        "--refit-every", type=int, metavar="N", help="origins between refits (1 every, 0 never)"
    )


def _model_commands(commands: Any) -> None:
    """train; testset; model."""
    _add(
        commands,
        "train",
        cmd_train,
        "train, evaluate, gate and register models on the dataset versions the cadence asks for",
    ).add_argument(
        "--data-version",
        type=int,
        metavar="N",
        help="train on exactly this dataset version (restored from DVC if needed)",
    )
    _backtest_command(commands)
    pinned = _group(
        commands,
        "testset",
        "the pinned test set: show it, or replace it deliberately",
        "The pinned test set every model version is scored on.",
    )
    _add(pinned, "show", cmd_testset_show, "the pinned test set's design, weeks and hash")
    _add(
        pinned,
        "replace",
        cmd_testset_replace,
        "build a new test-set version from the current design; older scores become not comparable",
    ).add_argument("--reason", required=True, help="why, for the record")
    model = _group(
        commands,
        "model",
        "registered models: list, lineage, rollback",
        "Registered model versions and the champion alias.",
    )
    _add(model, "list", cmd_model_list, "every model version with its scores and aliases")
    _add(model, "show", cmd_model_show, "full lineage of one model version").add_argument(
        "version", metavar="VERSION"
    )
    back = _add(
        model,
        "rollback",
        cmd_model_rollback,
        "move `champion` back (default: to `previous`) and record why",
    )
    back.add_argument("--to", metavar="VERSION", help="the version to roll back to")
    back.add_argument("--reason", required=True, help="why, for the audit log")
    back.add_argument(
        "--force", action="store_true", help="allow a version scored on another pinned test set"
    )
    back.add_argument(
        "--expect-champion",
        metavar="VERSION",
        help="refuse unless VERSION is still the champion (what you decided on has not moved)",
    )


def _serve_and_monitor_commands(commands: Any) -> None:
    """serve, score, monitor."""
    serve = _add(
        commands,
        "serve",
        cmd_serve,
        "serve the champion over HTTP: /predict, /metrics, /health, /ready",
    )
    serve.add_argument("--host", help="bind address (default: serve.host, 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default: serve.port, 8000)")
    serve.add_argument(
        "--workers", type=int, help="worker processes (default: serve.workers, 2; >= 1)"
    )
    score = _add(
        commands,
        "score",
        cmd_score,
        "forecast a day's hours with the champion into data/forecasts/ and the prediction log",
    )
    score.add_argument(
        "--date",
        metavar="YYYY-MM-DD",
        help="the day to forecast (default, and at most: the day after the latest data)",
    )
    score.add_argument(
        "--known",
        type=Path,
        metavar="FILE",
        help="CSV or Parquet with timestamp and the table.known columns for the periods "
        "forecast (default: the source file, when it holds them)",
    )
    _add(
        commands,
        "monitor",
        cmd_monitor,
        "drift, outliers, skew, live error, SLOs and alerts for the window before a date",
    ).add_argument(
        "--date",
        metavar="YYYY-MM-DD",
        help="monitor the monitor.window_days days before this date (default: the day after "
        "the latest month in the dataset)",
    )


def _ops_commands(commands: Any) -> None:
    """up, down; state."""
    up = _add(commands, "up", cmd_up, "start Airflow and the MLflow UI on 127.0.0.1 (`make up`)")
    up.add_argument("--airflow-port", type=int, help="default: stack.airflow_port")
    up.add_argument("--mlflow-port", type=int, help="default: stack.mlflow_port")
    _add(commands, "down", cmd_down, "stop every process `up` started (`make down`)")
    state = _group(
        commands,
        "state",
        "the cluster profile's shared state on the DVC remote",
        "The shared state every command and Airflow task works on when "
        "state.shared is true (docs/deploy.md).",
    )
    _add(state, "show", cmd_state_show, "the newest generation: when, by whom, what")
    _add(state, "pull", cmd_state_pull, "bring the workspace's shared folders to it")


# Commands that only read the workspace (or, like `up`, start what changes it): they take no
# lock, so they never wait, and never pull or push the shared state (powerops.ops.shared).
_READERS = {
    "cmd_catalog_list",
    "cmd_catalog_show",
    "cmd_catalog_search",
    "cmd_model_list",
    "cmd_model_show",
    "cmd_testset_show",
    "cmd_quarantine_list",
    "cmd_quarantine_show",
    "cmd_data_status",
    "cmd_state_show",
    "cmd_serve",
    "cmd_up",
    "cmd_down",
}


def cmd_state_show(params: Params, args: argparse.Namespace) -> int:
    from powerops.ops import shared

    if not params.state.shared:
        print("state.shared is false (the embedded profile): this workspace is the state")
        return 0
    head = shared.head(params)
    if head.generation == 0:
        print("no shared state on the DVC remote yet: the first command that changes it pushes")
        return 0
    print(f"generation {head.generation}, {head.at}, by {head.by}")
    for key in shared.SHARED:
        print(f"  {key:<16} {head.snapshots.get(key, '(empty)')}")
    return 0


def cmd_state_pull(params: Params, args: argparse.Namespace) -> int:
    from powerops.ops import shared

    if not params.state.shared:
        print("state.shared is false (the embedded profile): nothing to pull")
        return 0
    head = shared.pull(params)
    print(f"the workspace holds the shared state of generation {head.generation}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    log.setLevel(level)
    words = list(sys.argv[1:] if argv is None else argv)
    try:
        return _run(args, "powerops " + " ".join(words))
    except PowerOpsError as exc:  # a failure named in words: one line, its exit status
        return _fail(args, f"error: {exc}", exc.exit_status)
    except BrokenPipeError:  # the reader went away (`| head`): nothing is wrong, stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, as shell tools exit
    except Exception as exc:  # a bug or an unforeseen fault: still one line, never a success
        first = (str(exc).strip().splitlines() or [""])[0][:300]
        return _fail(
            args, f"error: unexpected {type(exc).__name__}: {first} (run with -v for the traceback)"
        )


def _run(args: argparse.Namespace, command: str) -> int:
    """Load the params and run the command: a writer inside the workspace lock and, in the
    cluster profile outside `dvc repro`, between a pull and a push of the shared state."""
    params = load_params(args.params)
    handler: Callable[[Params, argparse.Namespace], int] = args.handler
    if handler.__name__ in _READERS:
        return handler(params, args)
    from powerops.data.stages import ValidationFailedError
    from powerops.ops import shared
    from powerops.ops.lock import workspace_lock

    with workspace_lock(params, command):
        # Inside `dvc repro` (DVC sets DVC_STAGE) DVC tracks the stages' outputs itself.
        if os.environ.get("DVC_STAGE"):
            return handler(params, args)
        # Cluster profile: the command works on the shared state, like an Airflow task.
        by = f"cli:{_actor()}@{socket.gethostname()} {args.command}"
        with shared.synced(params, by, keep=(ValidationFailedError,)):
            return handler(params, args)


def _fail(args: argparse.Namespace, message: str, status: int = 1) -> int:
    if args.verbose:
        traceback.print_exc()
    print(f"powerops: {message}", file=sys.stderr)
    return status
