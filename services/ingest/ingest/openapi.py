"""/openapi.json: FastAPI's document plus the request bodies and write-key auth.

The routes read their bodies themselves (streaming, with a size limit), so
FastAPI cannot see them: their schemas are added here from the same models
that validate them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

_SECURITY_SCHEME = {
    "writeKey": {
        "type": "http",
        "scheme": "basic",
        "description": "the write key as user name, empty password (or `writeKey` in the body)",
    }
}


def install_openapi(app: FastAPI, request_models: Sequence[type[BaseModel]]) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        _, definitions = models_json_schema(
            [(model, "validation") for model in request_models],
            ref_template="#/components/schemas/{model}",
        )
        components = schema.setdefault("components", {})
        components.setdefault("schemas", {}).update(definitions.get("$defs", {}))
        components["securitySchemes"] = _SECURITY_SCHEME
        for path, operations in schema.get("paths", {}).items():
            if path.startswith("/v1/"):
                for operation in operations.values():
                    # Basic auth, or none here and the key in the body.
                    operation["security"] = [{"writeKey": []}, {}]
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
