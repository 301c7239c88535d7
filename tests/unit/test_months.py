from datetime import datetime

import pytest

from powerops.core.months import Month, MonthError, parse_month


def test_parse_and_print_round_trip() -> None:
    assert parse_month("2008-03") == Month(2008, 3)
    assert str(Month(2008, 3)) == "2008-03"


@pytest.mark.parametrize("text", ["2008-3", "2008-13", "2008-00", "08-03", "2008/03", "", "March"])
def test_malformed_month_is_rejected_with_the_expected_form(text: str) -> None:
    with pytest.raises(MonthError, match="expected YYYY-MM"):
        parse_month(text)


def test_bounds_are_first_instant_inclusive_and_next_month_exclusive() -> None:
    assert Month(2008, 2).start == datetime(2008, 2, 1)
    assert Month(2008, 2).end == datetime(2008, 3, 1)
    assert Month(2008, 12).end == datetime(2009, 1, 1)


def test_range_crosses_year_boundary() -> None:
    months = parse_month("2006-11").range_to(parse_month("2007-02"))
    assert [str(m) for m in months] == ["2006-11", "2006-12", "2007-01", "2007-02"]
    assert parse_month("2007-02").range_to(parse_month("2007-01")) == []
