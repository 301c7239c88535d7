from pathlib import Path

import pytest

from powerops.data.catalog import Catalog, CatalogError, ColumnSchema, DatasetRecord, parse_ref


def record(name: str, description: str, tags: list[str], columns: list[str]) -> DatasetRecord:
    return DatasetRecord(
        name=name,
        description=description,
        owner="team",
        tags=tags,
        columns=[ColumnSchema(name=c, dtype="float64", unit="kW") for c in columns],
    )


@pytest.fixture
def catalog(tmp_path: Path) -> Catalog:
    catalog = Catalog(tmp_path)
    catalog.save(
        record(
            "household_power",
            "Minute readings of one household",
            ["electricity", "raw"],
            ["date_time", "Global_active_power", "Voltage"],
        )
    )
    catalog.save(
        record(
            "weather_paris",
            "Hourly temperature at Orly airport",
            ["weather", "raw"],
            ["timestamp", "temperature"],
        )
    )
    catalog.save(
        record(
            "training_table",
            "Hourly modelling table",
            ["electricity", "features"],
            ["hour", "load_kw"],
        )
    )
    return catalog


def names(records: list[DatasetRecord]) -> list[str]:
    return [r.name for r in records]


def test_search_matches_description_tags_and_columns_case_insensitively(catalog: Catalog) -> None:
    assert names(catalog.search("orly")) == ["weather_paris"]
    assert names(catalog.search("ELECTRICITY")) == ["household_power", "training_table"]
    assert names(catalog.search("voltage")) == ["household_power"]
    assert names(catalog.search("hourly")) == ["training_table", "weather_paris"]
    assert catalog.search("gas meter") == []


def test_tag_filter_requires_every_tag(catalog: Catalog) -> None:
    assert names(catalog.search(tags=["raw"])) == ["household_power", "weather_paris"]
    assert names(catalog.search(tags=["raw", "electricity"])) == ["household_power"]
    assert names(catalog.search("temperature", tags=["electricity"])) == []


def test_round_trip_is_plain_yaml(catalog: Catalog) -> None:
    text = catalog.path("household_power").read_text()
    assert text.startswith("name: household_power\n")
    assert catalog.load("household_power").columns[1].name == "Global_active_power"


def test_unknown_dataset_and_version_name_what_exists(catalog: Catalog) -> None:
    with pytest.raises(CatalogError, match="datasets: household_power, training_table"):
        catalog.load("nope")
    with pytest.raises(CatalogError, match="has no version 3 \\(versions: none yet\\)"):
        catalog.load("household_power").version(3)


def test_parse_ref() -> None:
    assert parse_ref("household_power") == ("household_power", None)
    assert parse_ref("household_power@12") == ("household_power", 12)
    with pytest.raises(CatalogError, match="version must be a number"):
        parse_ref("household_power@latest")
