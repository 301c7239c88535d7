"""The serving SLO alert rules, checked and unit-tested by Prometheus' own promtool (from
Debian's package, fetched by scripts/promtool.sh when it is not installed)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO

RULES = REPO / "deploy" / "prometheus"


@pytest.fixture(scope="module")
def promtool(tmp_path_factory: pytest.TempPathFactory) -> str:
    tools = tmp_path_factory.mktemp("tools")
    found = subprocess.run(
        ["bash", str(REPO / "scripts" / "promtool.sh")],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin:/usr/sbin:/sbin", "POWEROPS_TOOLS": str(tools)},
    )
    if found.returncode != 0:
        pytest.skip(f"promtool is not installable here: {found.stderr.strip()[-300:]}")
    return found.stdout.strip().splitlines()[-1]


def test_rules_are_valid_and_fire_only_on_a_burning_budget(promtool: str) -> None:
    checked = subprocess.run(
        [promtool, "check", "rules", "serving_rules.yml"], cwd=RULES, capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 23 rules found" in checked.stdout
    tested = subprocess.run(
        [promtool, "test", "rules", "serving_rules_test.yml"],
        cwd=RULES,
        capture_output=True,
        text=True,
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_the_rule_tests_catch_a_wrong_threshold(promtool: str, tmp_path: Path) -> None:
    for name in ("serving_rules.yml", "serving_rules_test.yml"):
        shutil.copy(RULES / name, tmp_path / name)
    rules = tmp_path / "serving_rules.yml"
    # A page at any burn rate instead of 14.4x would wake someone for every blip.
    rules.write_text(rules.read_text().replace("(14.4 * 0.005)", "(0.0 * 0.005)"))
    tested = subprocess.run(
        [promtool, "test", "rules", "serving_rules_test.yml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert tested.returncode != 0
    assert "PowerOpsErrorBudgetFastBurn" in tested.stdout + tested.stderr
