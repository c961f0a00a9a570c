"""Photos sent as JSON (base64) instead of multipart: the request models and the route that takes them.

    POST /identify   {"photo": "<base64 or data: URL>", "top_k": 3}
    POST /verify     {"photo": "...", "person_id": 7}            (or "name")
    POST /people     {"name": "Alice", "photos": ["...", ...], "metadata": {...}}

Each JSON endpoint answers exactly as its multipart twin on the same path
(same service call, same errors); a route of `JsonBodyRoute` is taken only by
requests whose Content-Type is JSON, the multipart route by the rest. Photo
URLs are refused: fetching them would let any caller make the server connect
wherever it can reach (SSRF).
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Annotated, Any

from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette.datastructures import Headers
from starlette.routing import Match
from starlette.types import Scope

from ..errors import ServiceError
from ..faces.gallery.store import MAX_ID
from .core import RawUpload

Photo = Annotated[str, Field(min_length=1, description="the photo's bytes in base64, or a data: URL "
                                                       "(data:image/jpeg;base64,...)")]
_DATA_URL = re.compile(r"data:[\w/+.-]*(;[\w=.-]+)*;base64,", re.ASCII)


class _PhotoRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _no_urls(cls, data: Any) -> Any:
        if isinstance(data, dict) and any(k in data for k in ("image_url", "url", "photo_url", "img_url")):
            raise ValueError("photos are not fetched from URLs (that would let a caller make the server connect "
                             "anywhere it can reach); send the photo's bytes in base64")
        return data


class IdentifyJson(_PhotoRequest):
    photo: Photo
    top_k: int = Field(3, ge=1, le=10, description="candidates listed per face")


class VerifyJson(_PhotoRequest):
    photo: Photo
    person_id: int | None = Field(None, ge=1, le=MAX_ID, description="who is claimed (or name)")
    name: str | None = Field(None, max_length=200, description="who is claimed, by a name only one person has")


class EnrollJson(_PhotoRequest):
    name: str = Field(description="the person's name")
    photos: list[Photo] = Field(min_length=1, description="one or more photos of the person")
    pick: str = "auto"
    metadata: dict | None = Field(None, description="a JSON object to keep with the person")
    allow_same_name: bool = False


class PhotosJson(_PhotoRequest):
    photos: list[Photo] = Field(min_length=1, description="more photos of the person")
    pick: str = "auto"


def decode_photos(photos: list[str]) -> list[RawUpload]:
    """The uploads in base64 (a data: URL prefix allowed); 422 naming the first that is not base64."""
    out = []
    for i, text in enumerate(photos):
        prefix = _DATA_URL.match(text)
        try:
            data = base64.b64decode(text[prefix.end():] if prefix else text, validate=True)
        except (binascii.Error, ValueError):
            raise ServiceError(status=422, code="invalid_base64",
                               message=f"photo {i + 1}: not base64 (send the file's bytes base64-encoded, "
                                       "or as a data: URL)") from None
        out.append(RawUpload(data, f"photo-{i + 1}"))
    return out


def is_json(scope: Scope) -> bool:
    media_type = Headers(scope=scope).get("content-type", "").split(";", 1)[0].strip().lower()
    return media_type == "application/json" or media_type.endswith("+json")


class JsonBodyRoute(APIRoute):
    """Matches only requests with a JSON body, so a multipart route can share its path and method."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child = super().matches(scope)
        return (match, child) if match is Match.NONE or is_json(scope) else (Match.NONE, {})


def json_alternative(model: type[BaseModel]) -> dict:
    """`openapi_extra` that documents the JSON body beside the multipart one."""
    schema = model.model_json_schema()
    return {"requestBody": {"content": {"application/json": {"schema": schema}}}}
