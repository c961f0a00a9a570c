"""The HTTP API (FastAPI) and the web page.

    POST   /people               write  enroll a new person from one or more photos
    POST   /people/{id}/photos   write  add photos to a person
    GET    /people               read   list people (?name=, ?offset=, ?limit=)
    GET    /people/{id}          read   one person
    PATCH  /people/{id}          write  rename ({"name": ...})
    DELETE /people/{id}          write  delete a person, their embeddings and any kept photo
    POST   /verify               read   is the face in `photo` the person `person_id` (or `name`)?
    POST   /identify             read   every face in `photo`: name or null, distance, box
    GET    /version              read   version, model, threshold, limits, batching counters
    GET    /health               -      liveness, version; no key needed
    GET    /                     -      the web page (the key is entered there)
    GET    /openapi.json         -      this API's OpenAPI schema
    GET    /docs                 -      the same, to read and try in a browser (Swagger UI, served locally)

Photos come as multipart files, or as base64 in a JSON body (json_bodies.py)
on the same paths.
"""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from importlib import resources
from typing import Annotated

from fastapi import Depends, FastAPI, File, Form, Path, Query, Request, UploadFile
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from .. import __version__
from ..faces.gallery import Person
from ..faces.gallery.keys import ApiKey
from ..faces.gallery.store import MAX_ID
from .auth import KeyBeforeBody, require_read, require_write
from .core import FaceService, RawUpload, parse_metadata
from .docs_page import add_docs_page
from .errors import install_handlers
from .json_bodies import (
    EnrollJson,
    IdentifyJson,
    JsonBodyRoute,
    PhotosJson,
    VerifyJson,
    decode_photos,
    json_alternative,
)
from .limits import RequestLimits
from .schemas import DeletedOut, HealthOut, IdentifyOut, PeopleOut, PersonOut, Rename, VerifyOut, VersionOut, errors
from .settings import ServiceSettings

log = logging.getLogger(__name__)

STATIC = resources.files("cnnkit.service") / "static"
PersonId = Annotated[int, Path(ge=1, le=MAX_ID, description="the person's id")]
Reader = Annotated[ApiKey, Depends(require_read)]
Writer = Annotated[ApiKey, Depends(require_write)]
PICK_HELP = ("which face of a photo is the person: auto (the only face, or one clearly larger than the rest), "
             "only (exactly one face), largest")


async def _raw(files: list[UploadFile]) -> list[RawUpload]:
    return [RawUpload(await f.read(), f.filename) for f in files]


def create_app(settings: ServiceSettings) -> FastAPI:
    """The service for `settings`; the gallery is opened and the models loaded when it starts."""

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        service = FaceService(settings)
        app.state.service = service
        try:
            await run_in_threadpool(service.start)
            log.info("serving %s (%d people)", settings.gallery, len(service.gallery.people()))
            yield
        finally:
            await run_in_threadpool(service.close)

    app = FastAPI(title="cnnkit face recognition", version=__version__, lifespan=lifespan,
                  description="Enroll people from photos, verify a claimed identity, identify every face in a "
                              "photo. Every call but /health needs an API key (`cnnkit serve keys create`).",
                  docs_url=None, redoc_url=None, openapi_url="/openapi.json")
    install_handlers(app)
    app.add_middleware(KeyBeforeBody)  # inside RequestLimits: its answers get the security headers
    app.add_middleware(RequestLimits, max_bytes=settings.max_upload_bytes, timeout_s=settings.request_timeout_s)
    add_json_routes(app)  # before add_routes: on a shared path, the first route that matches is taken
    add_routes(app)
    add_docs_page(app, STATIC)
    return app


def app_from_environment() -> FastAPI:
    """The app factory each worker of `cnnkit serve --workers N` calls (settings come as JSON in the environment)."""
    return create_app(ServiceSettings.from_environment())


def _service(request: Request) -> FaceService:
    return request.app.state.service


def _created(person: Person) -> JSONResponse:
    """201 for a new person, with where to find them."""
    return JSONResponse(person.to_dict(), status_code=201, headers={"Location": f"/people/{person.id}"})


def add_json_routes(app: FastAPI) -> None:
    """The JSON twins of the routes that take photos: same paths, same answers (see json_bodies.py)."""

    async def enroll_json(request: Request, key: Writer, body: EnrollJson) -> JSONResponse:
        return _created(await _service(request).enroll(body.name, decode_photos(body.photos), pick=body.pick,
                                                       metadata=body.metadata, allow_same_name=body.allow_same_name))

    async def add_photos_json(request: Request, key: Writer, person_id: PersonId, body: PhotosJson) -> dict:
        return (await _service(request).add_photos(person_id, decode_photos(body.photos), pick=body.pick)).to_dict()

    async def verify_json(request: Request, key: Reader, body: VerifyJson) -> dict:
        return await _service(request).verify(decode_photos([body.photo]), person_id=body.person_id, name=body.name)

    async def identify_json(request: Request, key: Reader, body: IdentifyJson) -> dict:
        return await _service(request).identify(decode_photos([body.photo]), top_k=body.top_k)

    for path, endpoint, status, shape in (("/people", enroll_json, 201, PersonOut),
                                          ("/people/{person_id}/photos", add_photos_json, 200, PersonOut),
                                          ("/verify", verify_json, 200, VerifyOut),
                                          ("/identify", identify_json, 200, IdentifyOut)):
        app.router.add_api_route(path, endpoint, methods=["POST"], status_code=status, response_model=shape,
                                 include_in_schema=False, route_class_override=JsonBodyRoute)


def add_routes(app: FastAPI) -> None:
    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(str(STATIC / "index.html"), media_type="text/html")

    @app.get("/health", response_model=HealthOut, tags=["service"])
    async def health(request: Request) -> dict:
        """Liveness: answers without a key. `ready` is false until the models are loaded."""
        service = getattr(request.app.state, "service", None)
        return {"status": "ok", "version": __version__, "ready": bool(service and service.engine.ready)}

    @app.get("/version", response_model=VersionOut, tags=["service"], responses=errors(401))
    def version(request: Request, key: Reader) -> dict:
        """Version, model, threshold, limits, the key used, and how the batching went so far (this worker)."""
        return {**_service(request).about(), "key": {"id": key.id, "role": key.role, "label": key.label}}

    # -- people -------------------------------------------------------------------------

    @app.get("/people", response_model=PeopleOut, tags=["people"], responses=errors(401))
    def list_people(request: Request, key: Reader,
                    name: Annotated[str | None, Query(max_length=200, description="only people with this name")] = None,
                    offset: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
                    limit: Annotated[int, Query(ge=1, le=10000)] = 1000) -> dict:
        """Everyone enrolled, by name."""
        return _service(request).people(name=name, offset=offset, limit=limit)

    @app.post("/people", status_code=201, response_model=PersonOut, tags=["people"],
              responses=errors(401, 403, 409, 413, 415, 422, 503), openapi_extra=json_alternative(EnrollJson))
    async def enroll(request: Request, key: Writer,
                     name: Annotated[str, Form(description="the person's name")],
                     photos: Annotated[list[UploadFile], File(description="one or more photos of the person")],
                     pick: Annotated[str, Form(description=PICK_HELP)] = "auto",
                     metadata: Annotated[str | None, Form(description="a JSON object to keep with the person")] = None,
                     allow_same_name: Annotated[bool, Form(description="enroll a namesake (new id) even if the "
                                                                       "name is taken")] = False) -> JSONResponse:
        """Enroll a new person. One photo is enough; every photo must show the person's face, else nothing is stored."""
        return _created(await _service(request).enroll(name, await _raw(photos), pick=pick,
                                                       metadata=parse_metadata(metadata),
                                                       allow_same_name=allow_same_name))

    @app.get("/people/{person_id}", response_model=PersonOut, tags=["people"], responses=errors(401, 404))
    def get_person(request: Request, key: Reader, person_id: PersonId) -> dict:
        return _service(request).person(person_id).to_dict()

    @app.post("/people/{person_id}/photos", response_model=PersonOut, tags=["people"],
              responses=errors(401, 403, 404, 413, 415, 422, 503), openapi_extra=json_alternative(PhotosJson))
    async def add_photos(request: Request, key: Writer, person_id: PersonId,
                         photos: Annotated[list[UploadFile], File(description="more photos of the person")],
                         pick: Annotated[str, Form(description=PICK_HELP)] = "auto") -> dict:
        """Add photos to a person (all of them or none)."""
        person = await _service(request).add_photos(person_id, await _raw(photos), pick=pick)
        return person.to_dict()

    @app.patch("/people/{person_id}", response_model=PersonOut, tags=["people"], responses=errors(401, 403, 404, 422))
    def rename(request: Request, key: Writer, person_id: PersonId, body: Rename) -> dict:
        return _service(request).rename(person_id, body.name).to_dict()

    @app.delete("/people/{person_id}", response_model=DeletedOut, tags=["people"], responses=errors(401, 403, 404))
    def delete(request: Request, key: Writer, person_id: PersonId) -> dict:
        """Delete a person with all their embeddings (and any photo the service kept)."""
        return {"deleted": _service(request).remove(person_id).to_dict()}

    # -- recognition --------------------------------------------------------------------

    @app.post("/verify", response_model=VerifyOut, tags=["recognition"],
              responses=errors(401, 404, 409, 413, 415, 422, 503), openapi_extra=json_alternative(VerifyJson))
    async def verify(request: Request, key: Reader,
                     photo: Annotated[UploadFile, File(description="a photo of the person claimed")],
                     person_id: Annotated[int | None, Form(ge=1, le=MAX_ID,
                                                           description="who is claimed (or name)")] = None,
                     name: Annotated[str | None, Form(max_length=200, description="who is claimed, by a name "
                                                                                  "only one person has")] = None,
                     ) -> dict:
        """1:1 — is the (largest) face in the photo the claimed person? Compared with all their photos."""
        return await _service(request).verify(await _raw([photo]), person_id=person_id, name=name)

    @app.post("/identify", response_model=IdentifyOut, tags=["recognition"],
              responses=errors(401, 413, 415, 422, 503), openapi_extra=json_alternative(IdentifyJson))
    async def identify(request: Request, key: Reader,
                       photo: Annotated[UploadFile, File(description="a photo with any number of faces")],
                       top_k: Annotated[int, Form(ge=1, le=10, description="candidates listed per face")] = 3) -> dict:
        """1:K — who is every face in the photo? A name, or null for someone not enrolled."""
        return await _service(request).identify(await _raw([photo]), top_k=top_k)
