"""Run the service with uvicorn: one process, or N worker processes sharing the port."""

from __future__ import annotations

import functools
import ipaddress
import logging
import os

from ..errors import GalleryError, SettingsError
from ..faces.gallery import Gallery
from ..faces.gallery.keys import list_keys
from ..faces.gallery.store import GalleryStore
from .core import check_threshold
from .settings import ENV_SETTINGS, ServiceSettings

log = logging.getLogger(__name__)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def default_threads(workers: int) -> int:
    """PyTorch threads per worker: one.

    Requests come one photo at a time, so the models run many small operations;
    several threads per operation then spend their time synchronising, and on a
    machine with other work they wait for each other's time slices (measured on 2
    busy cores: one identification took 1.5 s with 2 threads, 0.25 s with 1; see
    docs/service.md). Parallelism comes from batching and from `--workers`.
    """
    del workers
    return 1


def prepare(settings: ServiceSettings) -> int:
    """Create or migrate the gallery once, before any worker opens it; the number of active keys."""
    with Gallery(settings.gallery, create=True) as gallery:
        check_threshold(gallery)
        if not isinstance(gallery.store, GalleryStore):  # a Path always opens SQLite, where the keys live
            raise GalleryError(f"{settings.gallery}: the service needs a SQLite gallery file")
        return len(list_keys(gallery.store, include_revoked=False))


def serve(settings: ServiceSettings, *, host: str = "127.0.0.1", port: int = 8000, workers: int = 1,
          log_level: str = "info", access_log: bool = True, ssl_certfile: str | None = None,
          ssl_keyfile: str | None = None) -> None:
    """Serve until interrupted. Models load in each worker before it accepts connections."""
    import uvicorn

    from .app import create_app

    if workers < 1:
        raise SettingsError(f"workers must be at least 1, got {workers}")
    if settings.threads is None:
        settings = settings.with_(threads=default_threads(workers))
    keys = prepare(settings)
    if keys == 0:
        log.warning("no active API key in %s: every call but /health will be refused; create one with "
                    "`cnnkit serve keys create --gallery %s --role write`", settings.gallery, settings.gallery)
    if not is_loopback(host):
        log.warning("listening on %s: reachable from other machines%s", host,
                    "" if ssl_certfile else "; keys travel in clear text without --ssl-certfile/--ssl-keyfile, "
                    "and browsers allow the camera only over HTTPS or on localhost")
    run = functools.partial(uvicorn.run, host=host, port=port, log_level=log_level, access_log=access_log,
                            ssl_certfile=ssl_certfile, ssl_keyfile=ssl_keyfile, timeout_keep_alive=5,
                            timeout_worker_healthcheck=60, server_header=False, proxy_headers=False)
    if workers == 1:
        run(create_app(settings))
    else:
        os.environ[ENV_SETTINGS] = settings.to_json()
        run("cnnkit.service.app:app_from_environment", factory=True, workers=workers)
