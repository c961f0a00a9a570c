"""The service's settings: one frozen dataclass, passed to worker processes as JSON."""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from ..errors import SettingsError
from ..faces.gallery.backends import backend_of

#: Environment variable through which `cnnkit serve --workers N` hands settings to its workers.
ENV_SETTINGS = "CNNKIT_SERVICE_SETTINGS"


@dataclass(frozen=True, kw_only=True)
class ServiceSettings:
    """How the service runs. Every limit is per request unless said otherwise.

    gallery: the gallery: a SQLite file (created if missing), or a Milvus location
        (milvus://HOST:PORT/COLLECTION, milvus-lite://PATH), kept as text.
    keys: the SQLite file holding the service's API keys (created if missing); None: the
        gallery file itself. A Milvus gallery has no place for them, so it needs one.
    max_upload_bytes: the whole request body; larger requests get 413 before they are read.
    max_files: photos per request (enrollment).
    max_pixels: width x height of one decoded photo; a larger one (or a decompression bomb) gets 413.
    header_timeout_s: time a connection has to send its request line and headers (from connecting,
        or from the previous response); then it is closed (server.py).
    request_timeout_s: time to receive a request's body, and time a request may wait for the
        face models (queued work not started by then is dropped: 503); then 408 / 503 / 504.
    batch_size: at most this many photos go through the detector and encoder together; requests
        that arrive while the models are busy are batched up to it (1 turns batching off).
    batch_wait_ms: how long the first request of a batch waits for company (0: never waits;
        batches still form from requests that queued while the models were busy).
    max_queue: photos waiting for the models at most; more get 503 at once (back-pressure).
    threads: PyTorch threads of each worker (None: cores / workers).
    store_images: a folder where uploaded enrollment photos are kept (None: nothing is kept).
    device: "auto", "cpu" or "cuda".
    """

    gallery: Path | str
    keys: Path | None = None
    max_upload_bytes: int = 10 * 1024 * 1024
    max_files: int = 10
    max_pixels: int = 40_000_000
    request_timeout_s: float = 30.0
    header_timeout_s: float = 10.0
    batch_size: int = 8
    batch_wait_ms: float = 0.0
    max_queue: int = 64
    threads: int | None = None
    store_images: Path | None = None
    device: str = "auto"

    def __post_init__(self) -> None:
        if backend_of(str(self.gallery)) == "sqlite":
            object.__setattr__(self, "gallery", Path(self.gallery))
        elif self.keys is None:
            raise SettingsError(f"{self.gallery}: a Milvus gallery keeps no API keys; give the service a keys "
                                f"file (--keys FILE, a small SQLite file created if missing)")
        if self.keys is not None:
            object.__setattr__(self, "keys", Path(self.keys))
        if self.store_images is not None:
            object.__setattr__(self, "store_images", Path(self.store_images))
        positive = {"max_upload_bytes": self.max_upload_bytes, "max_files": self.max_files,
                    "max_pixels": self.max_pixels, "request_timeout_s": self.request_timeout_s,
                    "header_timeout_s": self.header_timeout_s,
                    "batch_size": self.batch_size, "max_queue": self.max_queue}
        for name, value in positive.items():
            if value <= 0:
                raise SettingsError(f"{name} must be positive, got {value}")
        if self.batch_wait_ms < 0:
            raise SettingsError(f"batch_wait_ms must be 0 or more, got {self.batch_wait_ms}")
        if self.threads is not None and self.threads < 1:
            raise SettingsError(f"threads must be at least 1, got {self.threads}")
        if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", str(self.device)):
            raise SettingsError(f"device must be one of 'auto', 'cpu', 'cuda' or 'cuda:N', got {self.device!r}")

    @property
    def keys_file(self) -> Path:
        """Where the API keys live: the keys file, or the (SQLite) gallery file."""
        return self.keys if self.keys is not None else Path(self.gallery)

    def with_(self, **changes: Any) -> ServiceSettings:
        return replace(self, **changes)

    def to_json(self) -> str:
        data = asdict(self)
        data["gallery"] = str(self.gallery)
        data["keys"] = None if self.keys is None else str(self.keys)
        data["store_images"] = None if self.store_images is None else str(self.store_images)
        return json.dumps(data)

    @classmethod
    def from_json(cls, text: str) -> ServiceSettings:
        data = json.loads(text)
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    @classmethod
    def from_environment(cls) -> ServiceSettings:
        text = os.environ.get(ENV_SETTINGS)
        if not text:
            raise RuntimeError(f"{ENV_SETTINGS} is not set; start the service with `cnnkit serve`")
        return cls.from_json(text)
