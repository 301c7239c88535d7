"""Every real month of the UCI source, 2006-12 to 2010-11, passes the raw_batch suite."""

from datetime import UTC, datetime

import pytest

from powerops.core.config import load_params
from powerops.data.source import SourceFeed
from powerops.data.validation import validate_frame
from tests.conftest import REPO

# Through the real stack: `make test` runs it, `make test-fast` does not.
pytestmark = pytest.mark.slow


def test_every_real_month_passes_raw_batch() -> None:
    params = load_params(REPO / "params.yaml")
    params = params.model_copy(
        update={"validation": params.validation.model_copy(update={"data_docs": None})}
    )
    feed = SourceFeed(params.source_path(), params.source, progress=False)
    months = feed.months()
    assert (str(months[0]), str(months[-1]), len(months)) == ("2006-12", "2010-11", 48)
    now = datetime(2026, 11, 28, tzinfo=UTC)
    failed = {}
    for month in months:
        report = validate_frame(feed.month(month), params, "raw_batch", month, "-", now=now)
        if not report.success:
            failed[str(month)] = report.message()
    assert failed == {}
