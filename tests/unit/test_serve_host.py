"""`powerops serve` warns when it would listen beyond loopback with no API key."""

from __future__ import annotations

import pytest

from powerops.serve.serving import open_without_key


@pytest.mark.parametrize(
    ("host", "key", "warned"),
    [
        ("127.0.0.1", None, False),
        ("::1", None, False),
        ("localhost", None, False),
        ("0.0.0.0", None, True),
        ("::", None, True),
        ("10.1.2.3", None, True),
        ("forecasts.example", None, True),
        ("0.0.0.0", "s3cret", False),
    ],
)
def test_open_without_key(host: str, key: str | None, warned: bool) -> None:
    assert open_without_key(host, key) is warned
