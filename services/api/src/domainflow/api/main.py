"""Run one api replica."""

import uvicorn

from domainflow.api.app import create_app
from domainflow.api.settings import ApiSettings


def run(settings: ApiSettings | None = None) -> None:
    settings = settings or ApiSettings()
    uvicorn.run(
        create_app(settings),
        host=settings.http.host,
        port=settings.http.port,
        log_level="warning",
        access_log=False,
    )
