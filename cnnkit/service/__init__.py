"""The face recognition service: an HTTP API (FastAPI) and a web page over one gallery.

    cnnkit serve keys create --gallery office.db --role write
    cnnkit serve --gallery office.db            # http://127.0.0.1:8000/

    from cnnkit.service import ServiceSettings, create_app
    app = create_app(ServiceSettings(gallery="office.db"))   # any ASGI server

FastAPI and uvicorn are imported only here, never by `import cnnkit`.
See docs/service.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .settings import ServiceSettings

__all__ = ["ServiceSettings", "create_app", "serve"]

if TYPE_CHECKING:
    from .app import create_app
    from .server import serve


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from .app import create_app

        return create_app
    if name == "serve":
        from .server import serve

        return serve
    raise AttributeError(name)
