"""`domainflow openapi`: print the api's OpenAPI document, as /schema/openapi.json serves it."""

from domainflow.api.app import create_app
from domainflow.api.http.openapi import document as render


def document() -> str:
    # Building the app opens nothing (its lifespan does): no database or broker is needed.
    return render(create_app())
