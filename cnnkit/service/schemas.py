"""The shapes of the service's answers, for validation and for the OpenAPI schema."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class ErrorDetail(BaseModel):
    status: int = Field(description="the HTTP status, repeated")
    code: str = Field(description="stable, for programs: missing_key, invalid_key, forbidden, person_not_found, "
                                  "name_taken, ambiguous_name, upload_too_large, image_too_large, too_many_files, "
                                  "unsupported_media_type, unreadable_image, no_face, several_faces, invalid_name, "
                                  "invalid_request, request_timeout, overloaded, gallery_busy, internal_error, ...")
    message: str = Field(description="for people: what went wrong and what to do")
    details: Any = None


class ErrorBody(BaseModel):
    error: ErrorDetail


class PersonOut(BaseModel):
    id: int
    name: str
    metadata: dict = Field(default_factory=dict)
    embeddings: int = Field(description="photos enrolled (one embedding each)")
    created_at: str


class PeopleOut(BaseModel):
    total: int
    offset: int
    people: list[PersonOut]


class DeletedOut(BaseModel):
    deleted: PersonOut


class Rename(BaseModel):
    name: str = Field(min_length=1, max_length=200, description="the new name")


class CandidateOut(BaseModel):
    id: int
    name: str
    distance: float


class FaceOut(BaseModel):
    box: list[float] = Field(description="[x1, y1, x2, y2] in pixels of the uploaded photo")
    name: str | None = Field(description="the person recognised, or null for someone unknown")
    id: int | None
    distance: float | None = Field(description="distance to the nearest enrolled person (smaller is closer)")
    candidates: list[CandidateOut]


class OperatingPointOut(BaseModel):
    threshold: float
    people: int = Field(description="people in the gallery when the threshold was set")
    fpir: float = Field(description="target share of strangers let through")
    method: str
    extrapolated: bool


class IdentifyOut(BaseModel):
    width: int
    height: int
    threshold: float = Field(description="a face is recognised when its distance is at most this")
    operating_point: OperatingPointOut = Field(description="how the threshold follows the gallery's size")
    faces: list[FaceOut]


class VerifyOut(BaseModel):
    match: bool
    distance: float
    threshold: float
    person: PersonOut
    box: list[float] = Field(description="the face compared: the largest in the photo")


class HealthOut(BaseModel):
    status: str
    version: str
    ready: bool = Field(description="the face models are loaded")


class VersionOut(BaseModel):
    cnnkit: str
    model: str
    model_version: str
    threshold: float
    people: int
    limits: dict
    batching: dict
    stores_photos: bool
    key: dict = Field(description="the key this request used: id, role, label")


ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": text} for status, text in {
        401: "no valid API key", 403: "the key's role does not allow this", 404: "no such person",
        409: "conflict (name taken, name shared by several people)", 413: "upload, photo or file count too large",
        415: "not a JPEG, PNG or WebP image", 422: "invalid request, unreadable photo, no face / several faces",
        503: "busy: try again (Retry-After)"}.items()}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {s: ERRORS[s] for s in statuses}
