"""Who may call what: API keys from `Authorization: Bearer KEY` or `X-API-Key: KEY`.

401 when no valid key is given (missing, unknown or revoked: the answer does
not say which, so it cannot be used to probe keys); 403 when the key is valid
but its role does not allow the call (read: verify, identify, list; write: also
enroll, rename, delete). Keys are looked up on every request, so a revocation
takes effect on the next one, in every worker.

A request with a body (an upload) has its key checked before a byte of the
body is read (`KeyBeforeBody`): nobody without a valid key can make the
service receive and parse megabytes. The route's own dependency checks again.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers

from ..errors import ServiceError
from ..faces.gallery.keys import ApiKey, Role, check_key
from .errors import response_for

_bearer = HTTPBearer(auto_error=False, description="`Authorization: Bearer KEY` (from `cnnkit serve keys create`)")
_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="the key, as from `cnnkit serve keys create`")


def _authenticate(request: Request, bearer: HTTPAuthorizationCredentials | None,
                  header: str | None) -> ApiKey:
    token = header or (bearer.credentials if bearer is not None else None)
    return _key_for(request.app.state.service.keys, token)


def _key_for(store: Any, token: str | None) -> ApiKey:
    if not token:
        raise ServiceError(status=401, code="missing_key",
                           message="this call needs an API key: send `Authorization: Bearer KEY` "
                                   "or `X-API-Key: KEY` (create one with `cnnkit serve keys create`)",
                           headers={"WWW-Authenticate": "Bearer"})
    key = check_key(store, token.strip())
    if key is None:
        raise ServiceError(status=401, code="invalid_key", message="the API key is not valid (unknown or revoked)",
                           headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
    return key


def require(role: Role):
    """A dependency that admits keys allowed to act as `role`."""

    def dependency(request: Request, bearer: HTTPAuthorizationCredentials | None = Depends(_bearer),
                   header: str | None = Depends(_header)) -> ApiKey:
        key = _authenticate(request, bearer, header)
        if not key.allows(role):
            raise ServiceError(status=403, code="forbidden",
                               message=f"this key has the role {key.role!r}; this call needs {role!r}")
        return key

    dependency.__name__ = f"require_{role}"
    return dependency


require_read = require("read")
require_write = require("write")

#: Routes that take a body with a read key; every other route with a body needs a write key.
READ_POSTS = frozenset({"/verify", "/identify"})


def role_for(method: str, path: str) -> Role:
    return "read" if method == "POST" and path in READ_POSTS else "write"


def _token_of(headers: Headers) -> str | None:
    if headers.get("x-api-key"):
        return headers["x-api-key"]
    scheme, _, credentials = headers.get("authorization", "").partition(" ")
    return credentials.strip() if scheme.lower() == "bearer" and credentials.strip() else None


class KeyBeforeBody:
    """ASGI middleware: a request that carries a body needs a valid key (and role) before it is read."""

    def __init__(self, app: Callable[..., Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            headers = Headers(scope=scope)
            has_body = headers.get("content-length", "0").strip() not in ("", "0") or "transfer-encoding" in headers
            service = getattr(scope["app"].state, "service", None) if "app" in scope else None
            if has_body and service is not None and scope["path"] != "/health":
                role = role_for(scope["method"], scope["path"])
                try:
                    key = await run_in_threadpool(_key_for, service.keys, _token_of(headers))
                    if not key.allows(role):
                        raise ServiceError(status=403, code="forbidden",
                                           message=f"this key has the role {key.role!r}; this call needs {role!r}")
                except ServiceError as exc:
                    response = response_for(exc)
                    response.headers["connection"] = "close"  # the body is never read
                    await response(scope, receive, send)
                    return
        await self.app(scope, receive, send)
