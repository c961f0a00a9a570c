"""Who may call what: API keys from `Authorization: Bearer KEY` or `X-API-Key: KEY`.

401 when no valid key is given (missing, unknown or revoked: the answer does
not say which, so it cannot be used to probe keys); 403 when the key is valid
but its role does not allow the call (read: verify, identify, list; write: also
enroll, rename, delete). Keys are looked up on every request, so a revocation
takes effect on the next one, in every worker.
"""

from __future__ import annotations

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from ..errors import ServiceError
from ..faces.gallery.keys import ApiKey, Role, check_key

_bearer = HTTPBearer(auto_error=False, description="`Authorization: Bearer KEY` (from `cnnkit serve keys create`)")
_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="the key, as from `cnnkit serve keys create`")


def _authenticate(request: Request, bearer: HTTPAuthorizationCredentials | None,
                  header: str | None) -> ApiKey:
    token = header or (bearer.credentials if bearer is not None else None)
    if not token:
        raise ServiceError(status=401, code="missing_key",
                           message="this call needs an API key: send `Authorization: Bearer KEY` "
                                   "or `X-API-Key: KEY` (create one with `cnnkit serve keys create`)",
                           headers={"WWW-Authenticate": "Bearer"})
    key = check_key(request.app.state.service.gallery.store, token.strip())
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
