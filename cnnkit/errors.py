"""Every exception a user of cnnkit can cause, in one tree. Each message says what went wrong and what to do.

    CnnkitError                      base: the command line prints its message on one line, exit status 2
    ├── SettingsError (ValueError)   a setting or argument outside what is allowed (the message names the choices)
    ├── MissingDependency (ImportError)  an optional part is not installed: `.extra` names the pip extra
    ├── ImageError (ValueError)      an image is missing, unreadable, truncated, too large or of an unknown kind
    ├── NoFaceError                  no face where one was needed
    │   └── SeveralFacesError        several faces where one person was wanted
    ├── WeightsError                 a pretrained weight or saved model is missing, damaged or unknown
    │   └── DlibFormatError (ValueError)  a dlib .dat file that cannot be read
    ├── CheckpointError              a training checkpoint or saved model that cannot be used
    ├── DataError (ValueError)       input data that cannot be used
    │   ├── DatasetError             a face training set (empty, nobody with two photos, ...)
    │   ├── SignalError              an ECG record (missing, too short, no such lead, ...)
    │   ├── VolumeError              a 3D volume
    │   ├── VideoError               a video file for the ndconv models
    │   ├── VideoSourceError         a video source to watch (file, folder of frames, camera)
    │   ├── NoImagesError            no image files where images were expected
    │   └── ImageTooSmallError       an image smaller than the receptive field it must fill
    ├── GalleryError                 a gallery cannot be opened or changed as asked
    │   ├── PersonNotFound (LookupError)  no such person
    │   ├── NameTaken                the name is enrolled already (and a namesake was not asked for)
    │   ├── AmbiguousName            several people have this name: say which by id
    │   ├── InvalidName (ValueError)     a name that is empty, too long or holds control characters
    │   ├── InvalidMetadata (ValueError) metadata that is not a small JSON object of finite values
    │   ├── ModelMismatch            embeddings of another encoder than the gallery's
    │   └── GalleryBusy              another writer holds the gallery; try again
    ├── TrainingError                training cannot go on (a loss that is not finite, ...)
    ├── OutputTooLargeError          a style-transfer output that would not fit in memory
    ├── VisualizeError
    │   ├── LayerNotFoundError (ValueError)  a layer the model does not have
    │   ├── UntraceableModelError    receptive fields that the layer arithmetic cannot compute
    │   └── StateMismatchError       a run to resume was made with other settings
    └── ServiceError                 an HTTP answer other than success (status, stable code)
        ├── Overloaded               too much work queued already (503)
        └── TimedOut                 work not started within its deadline (503)

The command line turns a `CnnkitError` into one line on stderr and exit status 2;
anything else is a bug and keeps its traceback. The HTTP service maps these
classes to status codes by type (cnnkit/service/errors.py).
"""

from __future__ import annotations

from typing import Any


class CnnkitError(Exception):
    """Base class of the errors a user can cause and fix."""


class SettingsError(CnnkitError, ValueError):
    """A setting or argument with a value that is not allowed; the message names what is."""


class MissingDependency(CnnkitError, ImportError):
    """An optional dependency is not installed; `extra` is the pip extra that brings it."""

    def __init__(self, message: str, *, module: str = "", extra: str = "") -> None:
        super().__init__(message)
        self.module = module
        self.extra = extra


class ImageError(CnnkitError, ValueError):
    """An image could not be read: missing, unreadable, truncated, too large or of an unsupported kind."""


class NoFaceError(CnnkitError):
    """No face was found where one was required."""


class SeveralFacesError(NoFaceError):
    """Several faces of similar size where the photo had to show one person."""


class WeightsError(CnnkitError):
    """A pretrained weight or saved model is missing, corrupt or unknown."""


class DlibFormatError(WeightsError, ValueError):
    """A file is truncated, corrupt, not a dlib file, or uses an unsupported part of the format."""

    def __init__(self, message: str, *, source: str = "<bytes>", offset: int | None = None) -> None:
        where = source if offset is None else f"{source} at byte {offset}"
        super().__init__(f"{where}: {message}")
        self.source = source
        self.offset = offset


class CheckpointError(CnnkitError):
    """A checkpoint cannot be used: missing, damaged, not cnnkit's, or of another model or task."""


class DataError(CnnkitError, ValueError):
    """Input data that cannot be used."""


class DatasetError(DataError):
    """A training dataset cannot be used (empty, no person with two images, ...)."""


class SignalError(DataError):
    """An ECG record is missing, unreadable, too short, lacks the lead asked for, or has an unusable rate."""


class VolumeError(DataError):
    """A volume (or a folder of them) is missing, unreadable, empty, or of the wrong rank or dtype."""


class VideoError(DataError):
    """A video file is missing, corrupt, undecodable or too short for one clip."""


class VideoSourceError(DataError):
    """A video source to watch cannot be opened or read."""


class NoImagesError(DataError):
    """No image files where images were expected."""


class ImageTooSmallError(DataError):
    """An image smaller than the receptive field it would have to fill."""


class GalleryError(CnnkitError):
    """A gallery cannot be opened or changed as asked (the message says why and what to do)."""


class PersonNotFound(GalleryError, LookupError):
    """No person with this id or name."""


class NameTaken(GalleryError):
    """The name is enrolled already; `ids` are the people who have it."""

    def __init__(self, message: str, *, ids: list[int] | None = None) -> None:
        super().__init__(message)
        self.ids = list(ids or [])


class AmbiguousName(GalleryError):
    """Several people share this name; `ids` are theirs: say which by id."""

    def __init__(self, message: str, *, ids: list[int] | None = None) -> None:
        super().__init__(message)
        self.ids = list(ids or [])


class InvalidName(GalleryError, ValueError):
    """A person's name that is empty, too long, or holds control or invisible characters."""


class InvalidMetadata(GalleryError, ValueError):
    """Metadata that is not a JSON object of finite values within the size limit."""


class ModelMismatch(GalleryError):
    """Embeddings of another encoder (or version) than the gallery's."""


class GalleryBusy(GalleryError):
    """Another writer holds the gallery, or the change could not be saved; nothing was stored."""


class TrainingError(CnnkitError):
    """Training cannot go on (a loss that is not finite, ...)."""


class OutputTooLargeError(CnnkitError):
    """The requested output would not fit in memory; the message names a size that would."""


class VisualizeError(CnnkitError):
    """A visualization cannot be made as asked."""


class LayerNotFoundError(VisualizeError, ValueError):
    """A layer name the model does not have; the message lists the valid ones."""


class UntraceableModelError(VisualizeError):
    """The receptive fields of a model cannot be computed (an operation the layer arithmetic does not cover)."""


class StateMismatchError(VisualizeError):
    """A saved run to resume was made with other settings, model or images."""


class ServiceError(CnnkitError):
    """An HTTP answer other than success: status, stable code, message for people."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None, details: Any = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        if status is not None:
            self.status = status
        if code is not None:
            self.code = code
        self.message = message
        self.details = details
        self.headers = headers or {}


class Overloaded(ServiceError):
    """Too much work is queued already."""

    status = 503
    code = "overloaded"


class TimedOut(ServiceError):
    """The work was not started (or finished) within its deadline."""

    status = 503
    code = "overloaded"
