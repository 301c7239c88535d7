"""The alerting interface against a real HTTP server on loopback."""

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from powerops.core.alerts import Alert, emit, read_log
from powerops.core.config import Params, load_params
from tests.conftest import REPO


class _Receiver(BaseHTTPRequestHandler):
    received: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        _Receiver.received.append(json.loads(self.rfile.read(length)))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def webhook() -> Iterator[str]:
    server = HTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Receiver.received = []
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    finally:
        server.shutdown()
        server.server_close()


def params_with(tmp_path: Path, url: str | None) -> Params:
    params = load_params(REPO / "params.yaml").model_copy(update={"root": tmp_path})
    alerts = params.alerts.model_copy(update={"webhook_url": url, "webhook_timeout_s": 2})
    return params.model_copy(update={"alerts": alerts})


def test_alert_is_logged_and_posted(tmp_path: Path, webhook: str) -> None:
    params = params_with(tmp_path, webhook)
    emit(
        Alert(
            key="validation/raw_batch/2008-03",
            severity="critical",
            source="validate",
            summary="batch 2008-03 failed",
            details={"failed": 2},
        ),
        params,
    )
    assert _Receiver.received[0]["key"] == "validation/raw_batch/2008-03"
    assert _Receiver.received[0]["details"] == {"failed": 2}
    logged = read_log(tmp_path / "reports" / "alerts.jsonl")
    assert logged[0]["summary"] == "batch 2008-03 failed"
    assert logged[0]["webhook"] == "delivered (204)"


def test_unreachable_webhook_is_recorded_not_raised(tmp_path: Path, webhook: str) -> None:
    dead = webhook.rsplit(":", 1)[0] + ":9/hook"  # port 9 (discard) on loopback: refused
    params = params_with(tmp_path, dead)
    emit(Alert(key="k", severity="warning", source="test", summary="s"), params)
    logged = read_log(tmp_path / "reports" / "alerts.jsonl")
    assert logged[0]["webhook"].startswith("failed:")


def test_no_webhook_configured_only_logs(tmp_path: Path) -> None:
    emit(Alert(key="k", severity="info", source="test", summary="s"), params_with(tmp_path, None))
    assert "webhook" not in read_log(tmp_path / "reports" / "alerts.jsonl")[0]
