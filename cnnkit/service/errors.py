"""One shape for every error the service answers with, and the handlers that produce it.

    {"error": {"status": 404, "code": "person_not_found", "message": "no person with id 7"}}

`code` is stable (clients branch on it); `message` is for people; `details`
appears where there is more to say (the fields that failed validation, the ids
of people who share a name).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import CnnkitError, ImageError, NoFaceError
from ..faces.gallery import GalleryError

log = logging.getLogger(__name__)

_HTTP_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
               405: "method_not_allowed", 408: "request_timeout", 409: "conflict", 413: "too_large",
               415: "unsupported_media_type", 422: "invalid_request", 429: "too_many_requests",
               500: "internal_error", 503: "unavailable", 504: "timeout"}


class ServiceError(Exception):
    """An answer other than success: HTTP status, stable code, message for people."""

    def __init__(self, status: int, code: str, message: str, *, details: Any = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.headers = headers or {}


def error_body(status: int, code: str, message: str, details: Any = None) -> dict:
    error: dict[str, Any] = {"status": status, "code": code, "message": message}
    if details is not None:
        error["details"] = details
    return {"error": error}


def error_response(status: int, code: str, message: str, *, details: Any = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error_body(status, code, message, details), status_code=status, headers=headers)


def from_cnnkit_error(exc: CnnkitError) -> ServiceError:
    """The status and code of a library error that reached the service."""
    if isinstance(exc, ImageError):
        return ServiceError(422, "unreadable_image", str(exc))
    if isinstance(exc, NoFaceError):
        return ServiceError(422, "no_face", str(exc))
    if isinstance(exc, GalleryError):
        text = str(exc)
        if "no person with id" in text or "nobody called" in text:
            return ServiceError(404, "person_not_found", text)
        if "cannot write" in text or "could not save" in text:
            return ServiceError(503, "gallery_busy", f"{text}; try again", headers={"Retry-After": "1"})
        return ServiceError(409, "gallery_conflict", text)
    return ServiceError(400, "bad_request", str(exc))


def install_handlers(app: FastAPI) -> None:
    @app.exception_handler(ServiceError)
    async def _service(request: Request, exc: ServiceError) -> JSONResponse:
        return error_response(exc.status, exc.code, exc.message, details=exc.details, headers=exc.headers)

    @app.exception_handler(CnnkitError)
    async def _cnnkit(request: Request, exc: CnnkitError) -> JSONResponse:
        err = from_cnnkit_error(exc)
        return error_response(err.status, err.code, err.message, details=err.details, headers=err.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        details = [{"where": ".".join(str(p) for p in e.get("loc", ())), "problem": e.get("msg", "")}
                   for e in exc.errors()]
        where = ", ".join(d["where"] for d in details) or "the request"
        return error_response(422, "invalid_request", f"invalid or missing fields: {where}", details=details)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "error")
        message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
        return error_response(exc.status_code, code, message, headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return error_response(500, "internal_error", "the service failed on this request; see its log")
