"""Airflow plugin: the powerops model-operations page (`powerops.ops.opsview`) inside Airflow.

The page is a FastAPI app mounted under the API server at /powerops/ and listed in Airflow's
navigation ("Model operations"), which shows it inside the UI. It takes Airflow's login: a
request without a valid session (the `_token` cookie the UI sets, or a bearer token) gets 401,
and a user needs the permission to view the website. The workspace is $POWEROPS_WORKSPACE
(`make up` sets it), else this repository.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar

from airflow.plugins_manager import AirflowPlugin

URL_PREFIX = "/powerops"
WORKSPACE = Path(os.environ.get("POWEROPS_WORKSPACE", Path(__file__).resolve().parents[1]))


def _app() -> Any:
    from airflow.api_fastapi.auth.managers.models.resource_details import AccessView
    from airflow.api_fastapi.core_api.security import requires_access_view
    from fastapi import Depends

    from powerops.core.config import load_params
    from powerops.ops.opsview import create_app

    params = load_params(WORKSPACE / "params.yaml")
    return create_app(params, [Depends(requires_access_view(AccessView.WEBSITE))])


class PowerOpsView(AirflowPlugin):
    name = "powerops"
    fastapi_apps: ClassVar[list[dict[str, Any]]] = [
        {"app": _app(), "url_prefix": URL_PREFIX, "name": "powerops model operations"}
    ]
    external_views: ClassVar[list[dict[str, Any]]] = [
        {
            "name": "Model operations",
            "href": f"{URL_PREFIX}/",
            "destination": "nav",
            "url_route": "powerops",
        }
    ]
