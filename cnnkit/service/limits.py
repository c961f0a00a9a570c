"""ASGI middleware that guards every request before the framework reads it.

- The body may hold at most `max_bytes`: a larger Content-Length is answered
  with 413 before a byte of the body is read; a body that grows past the limit
  while streaming (chunked uploads, or a lying Content-Length) is cut off there.
- The body must arrive within `timeout_s` (a slow sender gets 408).
- Every response carries headers that keep browsers strict with the page
  (a Content-Security-Policy allowing only the service's own scripts, no
  framing, no MIME sniffing, no referrer).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from .errors import error_body

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

SECURITY_HEADERS = [
    (b"content-security-policy",
     b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
     b"media-src 'self' blob: mediastream:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
     b"form-action 'self'; frame-ancestors 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"permissions-policy", b"camera=(self), microphone=(), geolocation=()"),
    (b"cache-control", b"no-store"),
]


class _Stop(Exception):
    """Raised into the app when the body broke a limit; the middleware answers instead."""


@dataclass
class _Body:
    """What one request's body has done so far."""

    received: int = 0
    broken: tuple[int, str, str] | None = None  # (status, code, message) of the answer the middleware owes
    started: bool = False  # the app has started its response


class RequestLimits:
    def __init__(self, app: ASGIApp, *, max_bytes: int, timeout_s: float) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout_s = timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    await _answer(send, 400, "bad_request", "Content-Length is not a number")
                    return
                if declared > self.max_bytes:
                    await _answer(send, 413, "upload_too_large", self._too_large_message(declared))
                    return

        state = _Body()
        deadline = time.monotonic() + self.timeout_s

        async def limited_receive() -> Message:
            remaining = deadline - time.monotonic()
            try:
                message = await asyncio.wait_for(receive(), timeout=max(remaining, 0.001))
            except TimeoutError:
                state.broken = (408, "request_timeout",
                                f"the request body did not arrive within {self.timeout_s:g} s")
                raise _Stop() from None
            if message["type"] == "http.request":
                state.received += len(message.get("body", b""))
                if state.received > self.max_bytes:
                    state.broken = (413, "upload_too_large", self._too_large_message(state.received))
                    raise _Stop()
            return message

        async def guarded_send(message: Message) -> None:
            if state.broken is not None:
                return  # the middleware answers for the request
            if message["type"] == "http.response.start":
                state.started = True
                message["headers"] = list(message.get("headers", [])) + SECURITY_HEADERS
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except _Stop:
            pass
        except Exception:
            if state.broken is None:
                raise
        if state.broken is not None and not state.started:
            status, code, message = state.broken
            await _answer(send, status, code, message, close=True)

    def _too_large_message(self, size: int) -> str:
        return (f"the request body is {size:,} bytes or more, over this service's limit of "
                f"{self.max_bytes:,} bytes; send smaller or fewer photos")


async def _answer(send: Send, status: int, code: str, message: str, *, close: bool = False) -> None:
    body = json.dumps(error_body(status, code, message)).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers + SECURITY_HEADERS})
    await send({"type": "http.response.body", "body": body})
