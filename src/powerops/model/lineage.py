"""`powerops model show VERSION`: everything that made a model version, in words, and the
command that restores its training data."""

from __future__ import annotations

import json
from typing import Any

from powerops.core.config import Params
from powerops.data.catalog import Catalog, DatasetRecord, VersionRecord
from powerops.model import registry, testset


def lineage(params: Params, version: str) -> str:
    """The lineage of one model version: run, code, data, validation, test set, scores, the
    gate's verdict and the alias history."""
    model = registry.get_version(params, version)
    tags = model.tags
    run = registry.run_details(params, str(model.run_id))
    data_version = int(tags.get("data_version", "0"))
    record = Catalog(params.catalog_dir).load(params.dataset.name)
    data = record.version(data_version) if data_version else None
    held = registry.aliases(params).get(version, [])
    lines = [
        f"model {params.mlflow.model_name} version {version}"
        + (f"  [aliases: {', '.join(held)}]" if held else ""),
        f"  run:         {model.run_id} (trained by {tags.get('trained_by', '?')})",
        f"  code:        git {tags.get('git_commit', 'unknown')}, config {tags.get('config_hash')}",
    ]
    if data is not None:
        lines += _data_lines(record, data)
    lines += _score_lines(params, tags, run)
    lines += _alias_lines(params, version)
    if data is not None:
        lines.append(f"  restore its training data:  powerops data checkout {data.version}")
    return "\n".join(lines)


def _data_lines(record: DatasetRecord, data: VersionRecord) -> list[str]:
    validated = [v for v in record.versions[: data.version] if v.validation]
    passed = sum(bool(v.validation and v.validation.get("success")) for v in validated)
    last = data.validation or {}
    return [
        f"  data:        {record.name}@{data.version}: {data.first_month}..{data.last_month}, "
        f"{data.rows:,} rows, content {data.content_hash}, dvc {data.dvc_md5}",
        f"  validation:  {passed} of {data.version} batches passed "
        f"`{last.get('suite', '?')}`; the last one: {last.get('data_docs', 'no Data Docs')}",
    ]


def _score_lines(params: Params, tags: dict[str, str], run: dict[str, Any]) -> list[str]:
    metrics = run["metrics"]
    current = testset.load_manifest(params)
    comparable = current is not None and tags.get("test_set_hash") == current.sha256
    lines = [
        f"  test set:    v{tags.get('test_set_version')} sha256 {tags.get('test_set_hash')} "
        f"({'the current one' if comparable else 'NOT the current one: scores not comparable'})"
    ]
    for prefix, label in (
        ("test", "model"),
        ("test_seasonal_naive", "seasonal naive"),
        ("test_persistence", "persistence"),
        ("test_year_ago", "year-ago"),
    ):
        if prefix == "test_year_ago" and prefix + "_wape" not in metrics:
            continue  # scored only when the test set holds a year of history
        lines.append(
            f"  {label + ':':<16}rmse {metrics.get(prefix + '_rmse', float('nan')):.4f}  "
            f"mae {metrics.get(prefix + '_mae', float('nan')):.4f}  "
            f"wape {metrics.get(prefix + '_wape', float('nan')):.4f}"
        )
    steps = sorted(k for k in metrics if k.startswith("backtest_mae_step_"))
    if steps:
        per_step = " ".join(f"{metrics[k]:.3f}" for k in steps)
        lines.append(
            f"  backtest:    wape {metrics.get('backtest_wape', float('nan')):.4f} from "
            f"{run['params'].get('backtest_cutoff')}; mae by step 1..{len(steps)}: {per_step}"
        )
    lines.append(f"  gate:        {tags.get('gate', '?')}")
    lines += [f"               {reason}" for reason in json.loads(tags.get("gate_reasons", "[]"))]
    return lines


def _alias_lines(params: Params, version: str) -> list[str]:
    history = [m for m in registry.audit_log(params) if version in (m.to_version, m.from_version)]
    lines = ["  alias history:"]
    lines += [
        f"    {move.at}  {move.alias}: {move.from_version or '-'} -> {move.to_version}  "
        f"by {move.by}: {move.reason}"
        for move in history
    ]
    return lines if history else [*lines, "    (never held an alias)"]
