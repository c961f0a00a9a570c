"""GET /docs: Swagger UI over /openapi.json, with its scripts served by the service itself.

FastAPI's own /docs page loads Swagger UI from a CDN (nothing shows on a
machine without the internet) and starts it with an inline script (refused by
the service's Content-Security-Policy). Here the Swagger UI files come from the
`fastapi-offline` package (part of the `serve` extra) and the page and its
starter script are the service's own static files.
"""

from __future__ import annotations

from importlib import resources
from importlib.abc import Traversable

from fastapi import FastAPI
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from .errors import error_response


def add_docs_page(app: FastAPI, static: Traversable) -> None:
    """/docs, and /docs-assets for Swagger UI's files; `static` holds the page (docs.html, docs.js)."""
    try:
        assets = resources.files("fastapi_offline") / "static"
    except ModuleNotFoundError:
        @app.get("/docs", include_in_schema=False)
        async def no_docs() -> JSONResponse:
            return error_response(404, "not_found", "this install has no API page: pip install fastapi-offline "
                                                    "(or \"cnnkit[serve]\"); the schema is at /openapi.json")
        return

    app.mount("/docs-assets", StaticFiles(directory=str(assets)), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> FileResponse:
        return FileResponse(str(static / "docs.html"), media_type="text/html")
