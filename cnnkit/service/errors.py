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

from ..errors import (
    AmbiguousName,
    CnnkitError,
    GalleryBusy,
    GalleryError,
    ImageError,
    InvalidMetadata,
    InvalidName,
    ModelMismatch,
    NameTaken,
    NoFaceError,
    PersonNotFound,
    ServiceError,
    SettingsError,
    SeveralFacesError,
)

log = logging.getLogger(__name__)

_HTTP_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
               405: "method_not_allowed", 408: "request_timeout", 409: "conflict", 413: "too_large",
               415: "unsupported_media_type", 422: "invalid_request", 429: "too_many_requests",
               500: "internal_error", 503: "unavailable", 504: "timeout"}

#: The status and code of each kind of library error, most specific first (the first match wins).
#: A ServiceError carries its own.
STATUS_OF: list[tuple[type[CnnkitError], int, str]] = [
    (PersonNotFound, 404, "person_not_found"),
    (NameTaken, 409, "name_taken"),
    (AmbiguousName, 409, "ambiguous_name"),
    (InvalidName, 422, "invalid_name"),
    (InvalidMetadata, 422, "invalid_metadata"),
    (GalleryBusy, 503, "gallery_busy"),
    (ModelMismatch, 409, "model_mismatch"),
    (GalleryError, 409, "gallery_conflict"),
    (SeveralFacesError, 422, "several_faces"),
    (NoFaceError, 422, "no_face"),
    (ImageError, 422, "unreadable_image"),
    (SettingsError, 422, "invalid_request"),
    (CnnkitError, 400, "bad_request"),
]


def error_body(status: int, code: str, message: str, details: Any = None) -> dict:
    error: dict[str, Any] = {"status": status, "code": code, "message": message}
    if details is not None:
        error["details"] = details
    return {"error": error}


def error_response(status: int, code: str, message: str, *, details: Any = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error_body(status, code, message, details), status_code=status, headers=headers)


def response_for(exc: CnnkitError) -> JSONResponse:
    """The answer to a library error that reached the service, chosen by its type."""
    if isinstance(exc, ServiceError):
        return error_response(exc.status, exc.code, exc.message, details=exc.details, headers=exc.headers)
    status, code = next((s, c) for kind, s, c in STATUS_OF if isinstance(exc, kind))
    details = {"ids": exc.ids} if isinstance(exc, (NameTaken, AmbiguousName)) else None
    if isinstance(exc, GalleryBusy):
        return error_response(status, code, f"{exc}; try again", headers={"Retry-After": "1"})
    return error_response(status, code, str(exc), details=details)


def install_handlers(app: FastAPI) -> None:
    @app.exception_handler(CnnkitError)
    async def _cnnkit(request: Request, exc: CnnkitError) -> JSONResponse:
        return response_for(exc)

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
