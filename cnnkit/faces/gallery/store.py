"""The gallery's storage: one SQLite file (people, embeddings, settings), safe under crashes.

- Write-ahead logging, `synchronous=FULL`: a transaction reported committed
  survives a crash or a kill; one that was not is rolled back entirely.
- Every change is one `BEGIN IMMEDIATE` transaction, so a person is never half
  written; several readers and one writer at a time, others wait (busy timeout).
- `schema_version` in the meta table, with migrations; a newer schema is refused.
- Embeddings are float32 blobs, each with the model and model version that made it.
- Deletion erases: every connection runs with `secure_delete` (freed pages are
  overwritten with zeros, on any SQLite build), and a transaction that removed
  or renamed a person is followed by a `wal_checkpoint(TRUNCATE)`, which copies
  the zeroed pages into the main file and cuts the write-ahead log to 0 bytes:
  the old frames, which still hold what was removed, are gone from the disk
  file once `remove` returns (see docs/service.md for the limits: backups,
  copies of the file, Milvus).
- Private: a new gallery file is created 0600 whatever the umask; SQLite gives
  its -wal and -shm files the main file's mode.
- Ids: AUTOINCREMENT, so the id of a removed person or embedding is never given again.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ...errors import GalleryBusy, GalleryError
from ...runtime.clock import utc_timestamp

FORMAT = "cnnkit-gallery"
SCHEMA_VERSION = 2
BUSY_TIMEOUT_S = 30.0
#: Run inside every write transaction, just before COMMIT (see `GalleryStore.changes`).
_COUNT_CHANGE = ("INSERT INTO meta VALUES ('changes', '1') "
                 "ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + 1")
#: SQLite's rowids are signed 64-bit: anything outside 1..MAX_ID cannot be a stored id.
MAX_ID = 2**63 - 1
#: Mode of the gallery file (and so of its -wal and -shm) when cnnkit creates it.
FILE_MODE = 0o600

log = logging.getLogger(__name__)


def is_id(value: object) -> bool:
    """Whether `value` can be the id of a stored row (an int in 1..2^63-1); anything else is nobody."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool) and 0 < int(value) <= MAX_ID


def create_private_file(path: Path) -> None:
    """Create an empty file readable and writable by its owner only (0600), whatever the umask."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)  # the umask can only take bits away; set exactly these
    finally:
        os.close(fd)


def _execute_script(db: sqlite3.Connection, script: str) -> None:
    # Not executescript(): it commits first, which would split a migration in two.
    for statement in script.split(";"):
        if statement.strip():
            db.execute(statement)


def _create_v1(db: sqlite3.Connection) -> None:
    _execute_script(db, """
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        -- AUTOINCREMENT: the id of a removed person or embedding is never given again.
        CREATE TABLE people (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            name TEXT NOT NULL,
            metadata TEXT NOT NULL DEFAULT '{}',
            created_at TEXT NOT NULL
        );
        CREATE INDEX people_name ON people(name);
        CREATE TABLE embeddings (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            person_id INTEGER NOT NULL REFERENCES people(id) ON DELETE CASCADE,
            vector BLOB NOT NULL,
            model TEXT NOT NULL,
            model_version TEXT NOT NULL,
            source TEXT NOT NULL DEFAULT '',
            source_sha256 TEXT NOT NULL DEFAULT '',
            box TEXT NOT NULL DEFAULT '',
            created_at TEXT NOT NULL
        );
        CREATE INDEX embeddings_person ON embeddings(person_id);
    """)


def _add_api_keys_v2(db: sqlite3.Connection) -> None:
    # API keys of the HTTP service: only a hash of each key is kept.
    _execute_script(db, """
        CREATE TABLE api_keys (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            key_hash TEXT NOT NULL UNIQUE,
            role TEXT NOT NULL CHECK (role IN ('read', 'write')),
            label TEXT NOT NULL DEFAULT '',
            created_at TEXT NOT NULL,
            revoked_at TEXT
        )
    """)


#: schema version -> the step that brings a gallery from the version before up to it.
MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {1: _create_v1, 2: _add_api_keys_v2}


def inserted_id(cur: sqlite3.Cursor) -> int:
    """The rowid of the row an INSERT through `cur` just added (sqlite3 sets it after every INSERT)."""
    if cur.lastrowid is None:
        raise GalleryError("SQLite returned no id for a new row")
    return int(cur.lastrowid)


@dataclass(frozen=True)
class Person:
    id: int
    name: str
    metadata: dict = field(default_factory=dict)
    embeddings: int = 0
    created_at: str = ""

    def to_dict(self) -> dict:
        return {"id": self.id, "name": self.name, "metadata": self.metadata,
                "embeddings": self.embeddings, "created_at": self.created_at}


@dataclass(frozen=True)
class EmbeddingRecord:
    """One stored embedding and where it came from."""

    vector: np.ndarray
    source: str = ""
    source_sha256: str = ""
    box: tuple[float, ...] | None = None


class GalleryStore:
    """SQLite access for one gallery file. Thread-safe: one connection per thread."""

    searches_itself = False  # the Gallery keeps a search index of the vectors

    def __init__(self, path: str | os.PathLike, *, create: bool = False, readonly: bool = False) -> None:
        self.path = Path(path)
        exists = self.path.exists()
        if not exists and not create:
            raise GalleryError(f"{self.path}: no such gallery; enroll someone to create it "
                               "(in Python: Gallery(path, create=True))")
        if not exists and not self.path.parent.is_dir():
            raise GalleryError(f"{self.path}: the folder {self.path.parent} does not exist")
        if exists and self.path.is_dir():
            raise GalleryError(f"{self.path}: is a folder, not a gallery file")
        # Honour a file marked read-only even where we could write it anyway (root).
        self._file_writable = not exists or (os.access(self.path, os.W_OK) and bool(self.path.stat().st_mode & 0o222))
        self.readonly = readonly or not self._file_writable
        if readonly and not exists:
            raise GalleryError(f"{self.path}: no such gallery")
        if not exists:
            try:
                create_private_file(self.path)  # SQLite would create it 0644; its -wal/-shm copy this mode
            except FileExistsError:
                pass  # another process created it meanwhile: open theirs
            except OSError as exc:
                raise GalleryError(f"{self.path}: cannot create the gallery ({exc.strerror})") from None
        elif not self.readonly and self.path.stat().st_mode & 0o077:
            log.warning("%s is readable by other users (mode %o): it holds biometric data; "
                        "`chmod 600 %s` keeps it private", self.path, self.path.stat().st_mode & 0o777, self.path)
        self._local = threading.local()
        self._commits = 0
        try:
            self._check_or_create(self.connection(), exists)
        except sqlite3.DatabaseError as exc:
            self.close()
            raise GalleryError(f"{self.path}: not a cnnkit gallery ({exc})") from None

    # -- connections ----------------------------------------------------------------

    def connection(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = self._connect()
            db.execute("PRAGMA foreign_keys=ON")
            self._local.db = db
        return db

    def _connect(self) -> sqlite3.Connection:
        if self._file_writable:
            # `readonly` alone only forbids our writes; the connection itself can still
            # maintain the WAL index, which readers need.
            db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            # Freed pages are overwritten with zeros (SQLite's default depends on how it was built).
            db.execute("PRAGMA secure_delete=ON")
            return db
        # A file we may not write: read it as it is. (Without write access no WAL index
        # can be kept beside it, so fall back to reading it as immutable.)
        uri = self.path.resolve().as_uri()
        db = sqlite3.connect(f"{uri}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_S, isolation_level=None,
                             check_same_thread=False)
        try:
            db.execute("SELECT count(*) FROM sqlite_master").fetchone()
            return db
        except sqlite3.OperationalError:
            db.close()
            return sqlite3.connect(f"{uri}?immutable=1", uri=True, isolation_level=None, check_same_thread=False)

    def close(self) -> None:
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One transaction: all of it is stored, or none of it."""
        if self.readonly:
            why = "opened read-only" if self._file_writable else "file permissions"
            raise GalleryError(f"{self.path}: the gallery is read-only ({why}); nothing was changed")
        db = self.connection()
        try:
            db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise GalleryBusy(f"{self.path}: cannot write ({exc})") from None
        self._local.erased = False
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        else:
            try:
                db.execute(_COUNT_CHANGE)
                db.execute("COMMIT")
            except sqlite3.OperationalError as exc:
                db.execute("ROLLBACK")
                raise GalleryBusy(f"{self.path}: could not save the change ({exc}); nothing was stored") from None
            self._commits += 1
            if self._local.erased:
                self.erase_log()

    def erase_log(self) -> bool:
        """Copy every committed page into the main file and cut the write-ahead log to 0 bytes.

        After a removal, the log still holds the frames written before it (the person's
        rows as they were); secure_delete only zeroes the pages the removal wrote. This
        checkpoint waits (busy timeout) for readers of older snapshots to finish, then
        truncates. Returns whether it completed; when it could not (another process
        kept a read open past the busy timeout), a warning is logged and the next
        removal, or closing the last connection, finishes the job.
        """
        db = self.connection()
        deadline = time.monotonic() + BUSY_TIMEOUT_S
        while True:
            busy, _log_frames, _copied = db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            if not busy:
                return True
            if time.monotonic() > deadline:
                log.warning("%s: could not truncate the write-ahead log after a removal (a reader kept it busy); "
                            "removed data stays in %s-wal until the next checkpoint", self.path, self.path.name)
                return False
            time.sleep(0.05)

    # -- schema ---------------------------------------------------------------------

    def _check_or_create(self, db: sqlite3.Connection, exists: bool) -> None:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if not tables and not self.readonly:
            with self.write() as tx:
                for version in sorted(MIGRATIONS):
                    MIGRATIONS[version](tx)
                tx.executemany("INSERT INTO meta VALUES (?, ?)", [
                    ("format", FORMAT), ("schema_version", str(SCHEMA_VERSION)), ("created_at", utc_timestamp())])
            return
        if "meta" not in tables:
            raise GalleryError(f"{self.path}: a SQLite database, but not a cnnkit gallery")
        meta = dict(db.execute("SELECT key, value FROM meta"))
        if meta.get("format") != FORMAT:
            raise GalleryError(f"{self.path}: a SQLite database, but not a cnnkit gallery")
        version = int(meta.get("schema_version", "0"))
        if version > SCHEMA_VERSION:
            raise GalleryError(f"{self.path}: written by a newer cnnkit (gallery schema {version}, this cnnkit "
                               f"reads up to {SCHEMA_VERSION}); upgrade cnnkit to use it")
        if version < SCHEMA_VERSION:
            self._migrate(version)

    def _migrate(self, version: int) -> None:
        with self.write() as tx:
            for step in range(version + 1, SCHEMA_VERSION + 1):
                MIGRATIONS[step](tx)
            tx.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION),))

    # -- meta -----------------------------------------------------------------------

    def meta(self) -> dict[str, str]:
        return dict(self.connection().execute("SELECT key, value FROM meta"))

    def set_meta(self, tx: sqlite3.Connection, **values: str) -> None:
        tx.executemany("INSERT INTO meta VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                       list(values.items()))

    def changes(self) -> int:
        """The gallery's change counter: one more with every committed write, by any process.

        Kept in the file, so it stamps what was derived from the gallery (the
        search graph saved beside it, search.py) across processes.
        """
        row = self.connection().execute("SELECT value FROM meta WHERE key = 'changes'").fetchone()
        return int(row[0]) if row else 0

    def version(self) -> tuple[int, int]:
        """Changes whenever anyone commits a change: cheap, for refreshing caches.

        SQLite's data_version counts other connections' commits; our own are counted here.
        """
        return self.connection().execute("PRAGMA data_version").fetchone()[0], self._commits

    # -- people ---------------------------------------------------------------------

    def people(self, name: str | None = None, *, offset: int = 0, limit: int | None = None) -> list[Person]:
        """Everyone (or the people called `name`), by name then id, from `offset`, at most `limit`."""
        query = ("SELECT p.id, p.name, p.metadata, p.created_at, count(e.id) FROM people p "
                 "LEFT JOIN embeddings e ON e.person_id = p.id")
        args: tuple = ()
        if name is not None:
            query += " WHERE p.name = ?"
            args = (name,)
        query += " GROUP BY p.id ORDER BY p.name, p.id LIMIT ? OFFSET ?"
        args += (-1 if limit is None else int(limit), int(offset))
        return [Person(id=r[0], name=r[1], metadata=json.loads(r[2]), created_at=r[3], embeddings=r[4])
                for r in self.connection().execute(query, args)]

    def count_people(self, name: str | None = None) -> int:
        if name is None:
            return self.connection().execute("SELECT count(*) FROM people").fetchone()[0]
        return self.connection().execute("SELECT count(*) FROM people WHERE name = ?", (name,)).fetchone()[0]

    def names(self, person_ids: set[int]) -> dict[int, str]:
        """id -> name of these people (those that exist): the names a search answer needs, not everyone's."""
        ids = sorted(int(i) for i in person_ids if is_id(i))
        out: dict[int, str] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            rows = self.connection().execute(
                f"SELECT id, name FROM people WHERE id IN ({', '.join('?' * len(chunk))})", chunk)
            out.update((int(r[0]), r[1]) for r in rows)
        return out

    def person(self, person_id: int) -> Person | None:
        if not is_id(person_id):
            return None
        row = self.connection().execute(
            "SELECT p.id, p.name, p.metadata, p.created_at, count(e.id) FROM people p "
            "LEFT JOIN embeddings e ON e.person_id = p.id WHERE p.id = ? GROUP BY p.id", (person_id,)).fetchone()
        if row is None:
            return None
        return Person(id=row[0], name=row[1], metadata=json.loads(row[2]), created_at=row[3], embeddings=row[4])

    def add_person(self, tx: sqlite3.Connection, name: str, metadata: dict | None = None, *,
                   person_id: int | None = None, created_at: str | None = None) -> int:
        """A new person; `person_id`/`created_at` keep those of a gallery being migrated."""
        cur = tx.execute("INSERT INTO people (id, name, metadata, created_at) VALUES (?, ?, ?, ?)",
                         (person_id, name, json.dumps(metadata or {}), created_at or utc_timestamp()))
        return inserted_id(cur)

    def add_embeddings(self, tx: sqlite3.Connection, person_id: int, records: list[EmbeddingRecord],
                       model: str, model_version: str, *, created_at: list[str] | None = None) -> list[int]:
        ids = []
        for i, rec in enumerate(records):
            vector = np.ascontiguousarray(rec.vector, dtype="<f4")
            box = json.dumps([round(float(v), 2) for v in rec.box]) if rec.box is not None else ""
            cur = tx.execute(
                "INSERT INTO embeddings (person_id, vector, model, model_version, source, source_sha256, box, "
                "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (person_id, vector.tobytes(), model, model_version, rec.source, rec.source_sha256, box,
                 created_at[i] if created_at else utc_timestamp()))
            ids.append(inserted_id(cur))
        return ids

    def remove_person(self, tx: sqlite3.Connection, person_id: int) -> None:
        """Delete a person and their embeddings; the log is erased once the transaction commits."""
        if not is_id(person_id):
            return
        tx.execute("DELETE FROM embeddings WHERE person_id = ?", (person_id,))
        tx.execute("DELETE FROM people WHERE id = ?", (person_id,))
        self._local.erased = True

    def rename_person(self, tx: sqlite3.Connection, person_id: int, name: str) -> None:
        """A new name; the old one is erased from the file and its log once the transaction commits."""
        tx.execute("UPDATE people SET name = ? WHERE id = ?", (name, person_id))
        self._local.erased = True

    # -- embeddings -----------------------------------------------------------------

    def embeddings_after(self, dim: int, after_id: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(embedding ids, person ids, vectors (N, dim) float32) with id > after_id, by id."""
        rows = self.connection().execute(
            "SELECT id, person_id, vector FROM embeddings WHERE id > ? ORDER BY id", (after_id,)).fetchall()
        if not rows:
            return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, dim), np.float32)
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        people = np.fromiter((r[1] for r in rows), dtype=np.int64, count=len(rows))
        vectors = np.frombuffer(b"".join(r[2] for r in rows), dtype="<f4").reshape(len(rows), dim)
        return ids, people, vectors.astype(np.float32)

    def embedding_ids(self, up_to: int) -> np.ndarray:
        rows = self.connection().execute("SELECT id FROM embeddings WHERE id <= ?", (up_to,)).fetchall()
        return np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))

    def embedding_rows(self, person_id: int | None = None) -> list[dict]:
        query = ("SELECT id, person_id, vector, model, model_version, source, source_sha256, box, created_at "
                 "FROM embeddings")
        args: tuple = ()
        if person_id is not None:
            if not is_id(person_id):
                return []
            query += " WHERE person_id = ?"
            args = (person_id,)
        keys = ("id", "person_id", "vector", "model", "model_version", "source", "source_sha256", "box", "created_at")
        return [dict(zip(keys, r)) for r in self.connection().execute(query + " ORDER BY id", args)]

    def source_hashes(self) -> set[str]:
        """sha256 of every enrolled photo (what `enroll-tree` skips)."""
        return {r[0] for r in self.connection().execute(
            "SELECT DISTINCT source_sha256 FROM embeddings WHERE source_sha256 != ''")}

    def count(self) -> int:
        return self.connection().execute("SELECT count(*) FROM embeddings").fetchone()[0]

    def integrity_check(self) -> list[str]:
        """Problems found ([] when none): SQLite's own check, foreign keys, and embedding sizes."""
        db = self.connection()
        problems = [r[0] for r in db.execute("PRAGMA integrity_check") if r[0] != "ok"]
        problems += [f"embedding {r[1]} points to a missing person" for r in db.execute("PRAGMA foreign_key_check")]
        meta = self.meta()
        dim = meta.get("dim")
        if dim:
            bad = db.execute("SELECT count(*) FROM embeddings WHERE length(vector) != ?", (4 * int(dim),)).fetchone()[0]
            if bad:
                problems.append(f"{bad} embeddings have the wrong size")
        empty = db.execute("SELECT count(*) FROM people p WHERE NOT EXISTS "
                           "(SELECT 1 FROM embeddings e WHERE e.person_id = p.id)").fetchone()[0]
        if empty:
            problems.append(f"{empty} people have no embedding")
        if "model" in meta:
            for row in db.execute("SELECT DISTINCT model, model_version FROM embeddings"):
                if (row[0], row[1]) != (meta["model"], meta["model_version"]):
                    problems.append(f"embeddings of another model: {row[0]} {row[1]}")
        return problems
