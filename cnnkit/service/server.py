"""Run the service with uvicorn: one process, or N worker processes sharing the port.

Connections are guarded before the app sees them: one whose request line and
headers are not complete within `header_timeout_s` of connecting (or of the
previous response) is closed (`GuardedH11Protocol`), so connections held open
without a request cannot pile up until file descriptors run out; an idle
keep-alive connection is closed after 5 s; the body has `request_timeout_s`
(limits.py); headers are limited to 16 KiB in all.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import logging
import os
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from ..errors import SettingsError
from ..faces.gallery import Gallery
from ..faces.gallery.backends import backend_of
from ..faces.gallery.keys import list_keys
from ..faces.gallery.store import GalleryStore
from .core import check_threshold
from .settings import ENV_SETTINGS, ServiceSettings

log = logging.getLogger(__name__)

#: Environment variable through which worker processes learn the header timeout.
ENV_HEADER_TIMEOUT = "CNNKIT_SERVICE_HEADER_TIMEOUT_S"
#: Request line and headers together, at most (h11's own default is 16 KiB too; said here).
MAX_HEADER_BYTES = 16 * 1024
KEEP_ALIVE_S = 5


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, with a deadline for the request line and headers.

    The clock starts when the connection is made and again when a response is
    complete (the next request on a kept-alive connection); it stops when h11
    has parsed a whole request head. Past the deadline the connection is
    answered 408 and closed, whatever it has sent so far: a client sending a
    header byte every few seconds gains nothing.
    """

    header_timeout_s: float = float(os.environ.get(ENV_HEADER_TIMEOUT, "10"))

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._header_timer: asyncio.TimerHandle | None = None
        super().connection_made(transport)
        self._arm_header_timer()

    def _arm_header_timer(self) -> None:
        self._disarm_header_timer()
        self._header_timer = self.loop.call_later(self.header_timeout_s, self._headers_too_slow)

    def _disarm_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:  # a whole request head has been parsed
            self._disarm_header_timer()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
            self._arm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_timer()
        super().connection_lost(exc)

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
            return
        self._unset_keepalive_if_required()
        if self.conn.our_state is h11.IDLE:  # nothing answered on this connection's current cycle yet
            self.transport.write(b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain\r\n"
                                 b"content-length: 33\r\nconnection: close\r\n\r\n"
                                 b"the request headers came too late")
        self.transport.close()


def uvicorn_options(settings: ServiceSettings, *, workers: int = 1) -> dict[str, Any]:
    """The uvicorn settings that guard connections (also used by the tests' real server)."""
    if workers == 1:
        protocol: type[H11Protocol] = type("GuardedH11Protocol", (GuardedH11Protocol,),
                                           {"header_timeout_s": settings.header_timeout_s})
    else:  # worker processes import the class: they read the timeout from the environment
        os.environ[ENV_HEADER_TIMEOUT] = repr(settings.header_timeout_s)
        protocol = GuardedH11Protocol
    return {"http": protocol, "timeout_keep_alive": KEEP_ALIVE_S, "h11_max_incomplete_event_size": MAX_HEADER_BYTES}


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
    """Create or migrate the gallery and the keys file once, before any worker opens them; the active keys."""
    with Gallery(settings.gallery, create=True) as gallery:
        check_threshold(gallery)
    keys = GalleryStore(settings.keys_file, create=True)
    try:
        return len(list_keys(keys, include_revoked=False))
    finally:
        keys.close()


def serve(settings: ServiceSettings, *, host: str = "127.0.0.1", port: int = 8000, workers: int = 1,
          log_level: str = "info", access_log: bool = True, ssl_certfile: str | None = None,
          ssl_keyfile: str | None = None) -> None:
    """Serve until interrupted. Models load in each worker before it accepts connections."""
    import uvicorn

    from .app import create_app

    if workers < 1:
        raise SettingsError(f"workers must be at least 1, got {workers}")
    if workers > 1 and backend_of(str(settings.gallery)) != "sqlite":
        # Each worker is a writer, and a Milvus gallery's ids are counted by its one writing process.
        raise SettingsError(f"{settings.gallery}: a Milvus gallery takes one writer; serve it with --workers 1 "
                            f"(--threads gives that worker more cores)")
    if settings.threads is None:
        settings = settings.with_(threads=default_threads(workers))
    keys = prepare(settings)
    if keys == 0:
        log.warning("no active API key in %s: every call but /health will be refused; create one with "
                    "`cnnkit serve keys create --%s %s --role write`", settings.keys_file,
                    "keys" if settings.keys is not None else "gallery", settings.keys_file)
    if not is_loopback(host):
        log.warning("listening on %s: reachable from other machines%s", host,
                    "" if ssl_certfile else "; keys travel in clear text without --ssl-certfile/--ssl-keyfile, "
                    "and browsers allow the camera only over HTTPS or on localhost")
    guard = uvicorn_options(settings, workers=workers)
    run = functools.partial(uvicorn.run, host=host, port=port, log_level=log_level, access_log=access_log,
                            ssl_certfile=ssl_certfile, ssl_keyfile=ssl_keyfile, http=guard["http"],
                            timeout_keep_alive=guard["timeout_keep_alive"],
                            h11_max_incomplete_event_size=guard["h11_max_incomplete_event_size"],
                            timeout_worker_healthcheck=60, server_header=False, proxy_headers=False)
    if workers == 1:
        run(create_app(settings))
    else:
        os.environ[ENV_SETTINGS] = settings.to_json()
        run("cnnkit.service.app:app_from_environment", factory=True, workers=workers)
