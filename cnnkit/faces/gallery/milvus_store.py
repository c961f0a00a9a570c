"""A gallery kept in Milvus (a server or cluster, or Milvus Lite in a local file).

The same methods as the SQLite `GalleryStore`, so `Gallery` works unchanged on
top of it, plus `search()`: the nearest people are found by Milvus itself
(grouped by person), not by loading every vector into this process.

Three collections per gallery, named after it: `<name>_embeddings` (the
vectors with their provenance: person, model, source, sha256, box),
`<name>_people` (names, metadata, photo counts) and `<name>_meta` (settings
and id counters). Milvus has no transactions, so consistency comes from the
order of writes, and a single writer per gallery (`cnnkit faces enroll-tree`
writes from its driver only):

- a new person's embeddings are inserted first and the person row last; an
  embedding whose person row does not exist is invisible (skipped by search,
  listed by `check`), so a crash never shows half a person;
- removal deletes the person row first, then the embeddings;
- everything written inside one `write()` block is buffered and sent when the
  block ends without an error, so a refused change sends nothing.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import numpy as np

from ...errors import GalleryBusy, GalleryError
from ...runtime.clock import utc_timestamp
from ...runtime.extras import require
from .search import Hit
from .store import FORMAT, SCHEMA_VERSION, EmbeddingRecord, Person

log = logging.getLogger(__name__)

SCHEMES = ("milvus://", "milvus-lite://")
DEFAULT_COLLECTION = "gallery"
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,200}$")
_DUMMY = [0.0, 0.0]  # Milvus wants a vector field in every collection; people and meta carry this one
_SOURCE_MAX = 4096
_PAGE = 4096
_MAX_LIMIT = 16384  # Milvus's largest topk / query window
#: How fresh reads are. "Strong" makes every read wait for the server's next time tick (200 ms by default:
#: 300-400 ms a read here, so an enrollment, which reads twice, took 0.7 s); "Session" answers at once and
#: still sees every write of this process. Writes of *other* processes (an enrollment, a removal) reach this
#: one's answers within about a time tick. Only opening the gallery and the id counters read Strong.
READ_CONSISTENCY = "Session"


class _NoClientTimestampNotice(logging.Filter):
    # Milvus Lite answers iterators without a server timestamp; pymilvus warns each time and carries on.
    def filter(self, record: logging.LogRecord) -> bool:
        return "mvccTs" not in record.getMessage()


class _LiteUnimplementedNotice(logging.Filter):
    # Milvus Lite serves gRPC inside this process and has no AllocTimestamp: pymilvus asks, gets "not
    # implemented" and carries on, while the in-process gRPC server logs a traceback for each ask.
    def filter(self, record: logging.LogRecord) -> bool:
        return "Method not implemented" not in record.getMessage()


logging.getLogger("pymilvus.client.iterator.query_iterator").addFilter(_NoClientTimestampNotice())
logging.getLogger("grpc._server").addFilter(_LiteUnimplementedNotice())


def is_milvus_location(location: object) -> bool:
    return isinstance(location, str) and location.startswith(SCHEMES)


@dataclass(frozen=True)
class MilvusLocation:
    """Where a Milvus gallery lives: `uri` for MilvusClient and the gallery's `name`."""

    uri: str
    name: str
    lite: bool

    @classmethod
    def parse(cls, location: str) -> MilvusLocation:
        """`milvus://HOST:PORT/COLLECTION` or `milvus-lite://PATH[?collection=NAME]`."""
        if location.startswith("milvus-lite://"):
            rest = location[len("milvus-lite://"):]
            path, _, query = rest.partition("?")
            name = DEFAULT_COLLECTION
            if query:
                key, _, value = query.partition("=")
                if key != "collection" or not value:
                    raise GalleryError(f"{location}: the only option is ?collection=NAME")
                name = value
            if not path:
                raise GalleryError(f"{location}: give a file, e.g. milvus-lite://galleries/office.db")
            if not path.endswith(".db"):
                raise GalleryError(f"{location}: Milvus Lite files end in .db, e.g. milvus-lite://{path}.db")
            lite = True
            uri = path
        else:
            parts = urlsplit("http://" + location[len("milvus://"):])
            name = parts.path.strip("/")
            if not parts.hostname or not name or "/" in name:
                raise GalleryError(f"{location}: write milvus://HOST:PORT/COLLECTION, e.g. milvus://localhost:19530/office")
            lite = False
            uri = f"http://{parts.hostname}:{parts.port or 19530}"
        if not _NAME.match(name):
            raise GalleryError(f"{location}: a collection name is letters, digits and _ (not starting with a digit)")
        return cls(uri=uri, name=name, lite=lite)



@dataclass
class MilvusWrite:
    """The changes of one `write()` block, sent when the block ends."""

    meta: dict[str, str] = field(default_factory=dict)
    new_people: dict[int, dict] = field(default_factory=dict)
    embeddings: list[dict] = field(default_factory=list)
    added_to: dict[int, int] = field(default_factory=dict)  # person id -> photos added
    renamed: dict[int, str] = field(default_factory=dict)
    removed: list[int] = field(default_factory=list)


class MilvusStore:
    """The `GalleryStore` interface over Milvus collections (see the module's notes)."""

    searches_itself = True  # Gallery asks this store to search instead of building a local index

    def __init__(self, location: str, *, create: bool = False, readonly: bool = False,
                 index: str = "auto") -> None:
        MilvusClient = require("pymilvus", extra="milvus", purpose="Milvus galleries").MilvusClient
        self.location = MilvusLocation.parse(location)
        self.path = location
        self.readonly = readonly
        self.index_kind = index
        name = self.location.name
        self.c_emb, self.c_people, self.c_meta = f"{name}_embeddings", f"{name}_people", f"{name}_meta"
        try:
            self.client = MilvusClient(self.location.uri)
            existing = set(self.client.list_collections())
        except Exception as exc:  # pymilvus raises its own and grpc errors
            self.close()
            raise GalleryError(f"{location}: cannot reach Milvus ({_reason(exc)}); is the server running?") from None
        self._commits = 0
        self._counters: dict[str, int] = {}
        self._index_type: str | None = None
        self._version: tuple[int, int] | None = None
        ours = {self.c_people, self.c_meta}  # the embeddings' collection comes with the model's dimension
        if not (ours | {self.c_emb}) & existing:
            if not create or readonly:
                self.close()
                raise GalleryError(f"{location}: no such gallery; enroll someone to create it")
            self._create()
        elif not ours <= existing:
            self.close()
            raise GalleryError(f"{location}: only some of the gallery's collections exist "
                               f"({', '.join(sorted(ours & existing))}); not a complete cnnkit gallery")
        for collection in (self.c_meta, self.c_people, self.c_emb):
            if collection in existing:
                self.client.load_collection(collection)
        meta = self.meta(fresh=True)
        if meta.get("format") != FORMAT:
            self.close()
            raise GalleryError(f"{location}: these Milvus collections are not a cnnkit gallery")
        if int(meta.get("schema_version", "0")) > SCHEMA_VERSION:
            self.close()
            raise GalleryError(f"{location}: written by a newer cnnkit (gallery schema {meta['schema_version']}); "
                               "upgrade cnnkit to use it")

    # -- collections ------------------------------------------------------------------

    def _create(self) -> None:
        from pymilvus import DataType, MilvusClient

        def flat(field_name: str):
            params = self.client.prepare_index_params()
            params.add_index(field_name=field_name, index_type="FLAT", metric_type="L2")
            return params

        meta = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        meta.add_field("key", DataType.VARCHAR, max_length=256, is_primary=True)
        meta.add_field("value", DataType.VARCHAR, max_length=65535)
        meta.add_field("dummy", DataType.FLOAT_VECTOR, dim=len(_DUMMY))
        self.client.create_collection(self.c_meta, schema=meta, index_params=flat("dummy"),
                                      consistency_level="Strong")
        people = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        people.add_field("id", DataType.INT64, is_primary=True)
        people.add_field("name", DataType.VARCHAR, max_length=1024)
        people.add_field("metadata", DataType.JSON)
        people.add_field("embeddings", DataType.INT64)
        people.add_field("created_at", DataType.VARCHAR, max_length=32)
        people.add_field("dummy", DataType.FLOAT_VECTOR, dim=len(_DUMMY))
        self.client.create_collection(self.c_people, schema=people, index_params=flat("dummy"),
                                      consistency_level="Strong")
        # Written last: the gallery exists once its meta says so.
        self._upsert_meta({"format": FORMAT, "schema_version": str(SCHEMA_VERSION), "created_at": utc_timestamp(),
                           "next_person_id": "1", "next_embedding_id": "1"})

    def _create_embeddings(self, dim: int) -> None:
        """The vectors' collection, made once the dimension is known (when the model is recorded)."""
        from pymilvus import DataType, MilvusClient

        s = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        s.add_field("id", DataType.INT64, is_primary=True)
        s.add_field("person_id", DataType.INT64)
        s.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
        s.add_field("model", DataType.VARCHAR, max_length=512)
        s.add_field("model_version", DataType.VARCHAR, max_length=512)
        s.add_field("source", DataType.VARCHAR, max_length=_SOURCE_MAX * 4)
        s.add_field("source_sha256", DataType.VARCHAR, max_length=64)
        s.add_field("box", DataType.VARCHAR, max_length=512)
        s.add_field("created_at", DataType.VARCHAR, max_length=32)
        params = self.client.prepare_index_params()
        params.add_index(field_name="person_id", index_type=self._scalar_index())
        # "exact" keeps a flat index; otherwise an HNSW graph with FAISS's settings of the SQLite gallery.
        if self.index_kind == "exact":
            params.add_index(field_name="vector", index_type="FLAT", metric_type="L2")
        else:
            params.add_index(field_name="vector", index_type="HNSW", metric_type="L2",
                             params={"M": 32, "efConstruction": 80})
        # With its indexes given, create_collection also loads the collection.
        self.client.create_collection(self.c_emb, schema=s, index_params=params, consistency_level="Strong")

    def _server_version(self) -> tuple[int, int]:
        """(major, minor) of the Milvus server, asked once; Milvus Lite counts as current."""
        if self._version is None:
            if self.location.lite:
                self._version = (99, 0)
            else:
                try:
                    found = re.findall(r"\d+", str(self.client.get_server_version()))
                    self._version = (int(found[0]), int(found[1])) if len(found) >= 2 else (99, 0)
                except Exception:  # a server too old to say
                    self._version = (2, 3)
        return self._version

    def _scalar_index(self) -> str:
        """The person_id index this Milvus has: INVERTED from server 2.4 on and in Milvus Lite, else STL_SORT."""
        return "INVERTED" if self._server_version() >= (2, 4) else "STL_SORT"

    def _scan(self, collection: str, filter: str, fields: list[str]) -> Iterator[dict]:
        """Every matching row: one query, or page by page past Milvus's query window."""
        first = self.client.query(collection, filter=filter, output_fields=fields, limit=_MAX_LIMIT,
                                  consistency_level=READ_CONSISTENCY)
        if len(first) < _MAX_LIMIT:
            yield from first
            return
        it = self.client.query_iterator(collection, batch_size=_PAGE, filter=filter, output_fields=fields)
        try:
            while True:
                page = it.next()
                if not page:
                    return
                yield from page
        finally:
            it.close()

    # -- connections ------------------------------------------------------------------

    def close(self) -> None:
        client = getattr(self, "client", None)
        if client is not None:
            client.close()
            self.client = None

    def connection(self):
        raise GalleryError(f"{self.path}: a Milvus gallery has no SQL connection; the API keys of `cnnkit serve` "
                           f"live in a SQLite file (`--keys FILE`)")

    @contextmanager
    def write(self) -> Iterator[MilvusWrite]:
        """Changes sent together when the block ends; nothing is sent if it raises."""
        if self.readonly:
            raise GalleryError(f"{self.path}: the gallery is read-only (opened read-only); nothing was changed")
        tx = MilvusWrite()
        yield tx
        self._apply(tx)
        self._commits += 1

    def _apply(self, tx: MilvusWrite) -> None:
        try:
            if tx.meta:
                self._upsert_meta(tx.meta)
            if tx.embeddings:
                self.client.insert(self.c_emb, tx.embeddings)
            rows = dict(tx.new_people)
            for person_id in set(tx.added_to) | set(tx.renamed):
                row = rows.get(person_id) or self._person_row(person_id)
                if row is None:
                    continue
                if person_id not in tx.new_people:
                    row["embeddings"] += tx.added_to.get(person_id, 0)
                row["name"] = tx.renamed.get(person_id, row["name"])
                rows[person_id] = row
            if rows:
                self.client.upsert(self.c_people, list(rows.values()))  # the person row last: it makes them visible
            if tx.removed:
                self.client.delete(self.c_people, ids=tx.removed)
                self.client.delete(self.c_emb, filter=f"person_id in {sorted(set(tx.removed))}")
            if tx.removed or tx.renamed:
                self._compact()
        except GalleryError:
            raise
        except Exception as exc:
            raise GalleryBusy(f"{self.path}: could not save the change ({_reason(exc)})") from None

    def _compact(self) -> None:
        """Ask Milvus to rewrite its segments without deleted rows (a removal only marks them deleted).

        Best effort and asynchronous: the old segment files stay on the server's disk until its garbage
        collector drops them (docs/distributed.md, "Deletion"); Milvus Lite has no compaction.
        """
        if self.location.lite:
            return
        for collection in (self.c_people, self.c_emb):
            try:
                self.client.compact(collection)
            except Exception as exc:  # the removal itself is done; say why erasure may take longer
                log.warning("%s: Milvus did not start a compaction of %s (%s); removed rows stay in its "
                            "segments until the next automatic one", self.path, collection, _reason(exc))

    def _person_row(self, person_id: int) -> dict | None:
        rows = self.client.get(self.c_people, ids=[person_id],
                               output_fields=["id", "name", "metadata", "embeddings", "created_at", "dummy"],
                               consistency_level=READ_CONSISTENCY)
        if not rows:
            return None
        row = dict(rows[0])
        row["dummy"] = _DUMMY
        return row

    def _upsert_meta(self, values: dict[str, str]) -> None:
        self.client.upsert(self.c_meta, [{"key": k, "value": str(v), "dummy": _DUMMY} for k, v in values.items()])

    def _allocate(self, tx: MilvusWrite, counter: str, n: int, *, at: int | None = None) -> int:
        """Reserve `n` ids (never given again, like SQLite's AUTOINCREMENT); the first one.

        The counters are read once and kept here (one writer per gallery); the
        new value is saved with the write, before its rows.
        """
        if counter not in self._counters:
            self._counters[counter] = int(self.meta(fresh=True)[counter])
        first = self._counters[counter] if at is None else at
        self._counters[counter] = max(self._counters[counter], first + n)
        tx.meta[counter] = str(self._counters[counter])
        return first

    # -- meta -------------------------------------------------------------------------

    def meta(self, *, fresh: bool = False) -> dict[str, str]:
        """The gallery's settings. Read at search's consistency (identify reads them on every query: Strong
        would wait for the server's next time tick each time), unless `fresh`: opening the gallery and the id
        counters read them Strong, so a writer never starts from counters older than the last write."""
        rows = self.client.query(self.c_meta, filter='key != ""', output_fields=["key", "value"], limit=_MAX_LIMIT,
                                 **({} if fresh else {"consistency_level": READ_CONSISTENCY}))
        return {r["key"]: r["value"] for r in rows}

    def set_meta(self, tx: MilvusWrite, **values: str) -> None:
        tx.meta.update(values)
        if "dim" in values and not self.client.has_collection(self.c_emb):
            self._create_embeddings(int(values["dim"]))

    def version(self) -> tuple[int, int]:
        return 0, self._commits

    def changes(self) -> int:
        """This process's writes (Milvus searches itself: no graph of it is saved anywhere to stamp)."""
        return self._commits

    # -- people -----------------------------------------------------------------------

    def people(self, name: str | None = None, *, offset: int = 0, limit: int | None = None) -> list[Person]:
        fields = ["id", "name", "metadata", "embeddings", "created_at"]
        rows = (self._scan(self.c_people, f"name == {_literal(name)}", fields) if name is not None
                else self._scan(self.c_people, "id >= 0", fields))
        people = sorted((_person(r) for r in rows), key=lambda p: (p.name, p.id))
        return people[offset:None if limit is None else offset + limit]

    def count_people(self, name: str | None = None) -> int:
        expr = f"name == {_literal(name)}" if name is not None else ""
        # Session, as search: identify asks for the count on every query (the size-aware threshold), and the
        # collection's Strong default would wait for the server's next time tick each time (400 ms a query).
        return int(self.client.query(self.c_people, filter=expr, output_fields=["count(*)"],
                                     consistency_level=READ_CONSISTENCY)[0]["count(*)"])

    def person(self, person_id: int) -> Person | None:
        row = self._person_row(int(person_id))
        return None if row is None else _person(row)

    def names(self, person_ids: set[int]) -> dict[int, str]:
        """id -> name of these people (those that exist)."""
        if not person_ids:
            return {}
        return {int(r["id"]): r["name"] for r in self.client.get(self.c_people, ids=sorted(person_ids),
                                                                 output_fields=["id", "name"],
                                                                 consistency_level=READ_CONSISTENCY)}

    def add_person(self, tx: MilvusWrite, name: str, metadata: dict | None = None, *,
                   person_id: int | None = None, created_at: str | None = None) -> int:
        person_id = self._allocate(tx, "next_person_id", 1, at=person_id)
        tx.new_people[person_id] = {"id": person_id, "name": name, "metadata": metadata or {}, "embeddings": 0,
                                    "created_at": created_at or utc_timestamp(), "dummy": _DUMMY}
        return person_id

    def add_embeddings(self, tx: MilvusWrite, person_id: int, records: list[EmbeddingRecord],
                       model: str, model_version: str, *, created_at: list[str] | None = None) -> list[int]:
        if not records:
            return []
        first = self._allocate(tx, "next_embedding_id", len(records))
        ids = list(range(first, first + len(records)))
        for i, (eid, rec) in enumerate(zip(ids, records)):
            if len(rec.source) > _SOURCE_MAX:
                raise GalleryError(f"a photo's source is longer than {_SOURCE_MAX} characters; nothing was changed")
            box = json.dumps([round(float(v), 2) for v in rec.box]) if rec.box is not None else ""
            tx.embeddings.append({
                "id": eid, "person_id": int(person_id),
                "vector": np.ascontiguousarray(rec.vector, dtype=np.float32).tolist(),
                "model": model, "model_version": model_version, "source": rec.source,
                "source_sha256": rec.source_sha256, "box": box,
                "created_at": created_at[i] if created_at else utc_timestamp()})
        if person_id in tx.new_people:
            tx.new_people[person_id]["embeddings"] += len(records)
        else:
            tx.added_to[person_id] = tx.added_to.get(person_id, 0) + len(records)
        return ids

    def remove_person(self, tx: MilvusWrite, person_id: int) -> None:
        tx.removed.append(int(person_id))

    def rename_person(self, tx: MilvusWrite, person_id: int, name: str) -> None:
        tx.renamed[int(person_id)] = name

    # -- embeddings -------------------------------------------------------------------

    def _has_embeddings(self) -> bool:
        return self.client.has_collection(self.c_emb)

    def embeddings_after(self, dim: int, after_id: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(embedding ids, person ids, vectors) with id > after_id, by id (of people that exist)."""
        rows = (list(self._scan(self.c_emb, f"id > {int(after_id)}", ["id", "person_id", "vector"]))
                if self._has_embeddings() else [])
        live = {p.id for p in self.people()}
        rows = sorted((r for r in rows if r["person_id"] in live), key=lambda r: r["id"])
        if not rows:
            return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, dim), np.float32)
        return (np.array([r["id"] for r in rows], np.int64), np.array([r["person_id"] for r in rows], np.int64),
                np.asarray([r["vector"] for r in rows], np.float32).reshape(len(rows), dim))

    def embedding_ids(self, up_to: int) -> np.ndarray:
        rows = self._scan(self.c_emb, f"id <= {int(up_to)}", ["id"]) if self._has_embeddings() else []
        return np.array(sorted(r["id"] for r in rows), np.int64)

    def embedding_rows(self, person_id: int | None = None) -> list[dict]:
        """Like the SQLite store's rows: the vector as little-endian float32 bytes."""
        keys = ("id", "person_id", "vector", "model", "model_version", "source", "source_sha256", "box", "created_at")
        if not self._has_embeddings():
            return []
        if person_id is not None:
            rows = self._scan(self.c_emb, f"person_id == {int(person_id)}", list(keys))
            live = None
        else:
            rows = self._scan(self.c_emb, "id >= 0", list(keys))
            live = {p.id for p in self.people()}
        out = []
        for r in rows:
            if live is not None and r["person_id"] not in live:
                continue
            row = {k: r[k] for k in keys}
            row["vector"] = np.asarray(r["vector"], dtype="<f4").tobytes()
            out.append(row)
        return sorted(out, key=lambda r: r["id"])

    def source_hashes(self) -> set[str]:
        """sha256 of every enrolled photo (of people that exist)."""
        if not self._has_embeddings():
            return set()
        live = {p.id for p in self.people()}
        return {r["source_sha256"]
                for r in self._scan(self.c_emb, 'source_sha256 != ""', ["person_id", "source_sha256"])
                if r["person_id"] in live}

    def count(self) -> int:
        if not self._has_embeddings():
            return 0
        return int(self.client.query(self.c_emb, filter="", output_fields=["count(*)"],
                                     consistency_level=READ_CONSISTENCY)[0]["count(*)"])

    # -- search -----------------------------------------------------------------------

    def search(self, queries: np.ndarray, k: int, *, ef: int = 128) -> list[list[Hit]]:
        """The k nearest people of each query (each at their nearest photo's distance), found by Milvus.

        A plain search for the nearest k + 8 photos, grouped here; a query whose
        photos come from too few people (someone with many photos) is asked
        again with Milvus's grouping search, which is several times slower.
        """
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        if not len(queries):
            return []
        if not self._has_embeddings():
            return [[] for _ in queries]
        want = min(k + 8, _MAX_LIMIT)
        params = {"params": {"ef": max(ef, want)}} if self._vector_index() == "HNSW" else {}
        out: list[list[Hit]] = []
        # Milvus Lite compares queries with not-yet-indexed rows by broadcasting (queries x rows x dim
        # floats at once): a few queries per request keep that memory small.
        per_request = 4 if self.location.lite else 1024
        for start in range(0, len(queries), per_request):
            chunk = queries[start:start + per_request]
            results = self._search(chunk, want, params)
            short = [i for i, hits in enumerate(results)
                     if len(hits) == want and len({h["entity"]["person_id"] for h in hits}) <= k]
            if short and self._server_version() >= (2, 4):
                # a few spare groups: hits of people being written or removed are dropped below
                grouped = self._search(chunk[short], min(k + 8, _MAX_LIMIT), params, group_by_field="person_id")
                for i, hits in zip(short, grouped):
                    results[i] = hits
            widen = want
            while short and widen < _MAX_LIMIT:
                # Milvus 2.3 has no grouping search: ask those queries for more photos until k + 1 people show
                widen = min(widen * 4, _MAX_LIMIT)
                wide_params = {"params": {"ef": max(ef, widen)}} if params else {}
                wider = self._search(chunk[short], widen, wide_params)
                for i, hits in zip(short, wider):
                    results[i] = hits
                short = [i for i in short if len(results[i]) == widen
                         and len({h["entity"]["person_id"] for h in results[i]}) <= k]
            nearest = []  # per query: each person once, at their nearest photo, nearest first
            for hits in results:
                best: dict[int, Hit] = {}
                for h in hits:
                    person = int(h["entity"]["person_id"])
                    if person not in best:
                        best[person] = Hit(person, float(np.sqrt(max(h["distance"], 0.0))), int(h["id"]))
                nearest.append(sorted(best.values(), key=lambda h: h.distance))
            out.extend(self._only_live(nearest, k))
        return out

    def _only_live(self, nearest: list[list[Hit]], k: int) -> list[list[Hit]]:
        """The first k hits of each list whose person exists (asking Milvus about as few people as it can)."""
        live: set[int] = set()
        asked: set[int] = set()
        take = k + 1
        while True:
            ask = {h.person_id for hits in nearest for h in hits[:take]} - asked
            if ask:
                live |= {r["id"] for r in self.client.get(self.c_people, ids=sorted(ask), output_fields=["id"],
                                                          consistency_level=READ_CONSISTENCY)}
                asked |= ask
            answers = [[h for h in hits[:take] if h.person_id in live][:k] for hits in nearest]
            if all(len(a) == k or take >= len(hits) for a, hits in zip(answers, nearest)):
                return answers
            take *= 2

    def _vector_index(self) -> str:
        """The index type the gallery was created with (HNSW or FLAT), asked once."""
        if self._index_type is None:
            self._index_type = str(self.client.describe_index(self.c_emb, "vector").get("index_type", "")).upper()
        return self._index_type

    def _search(self, queries: np.ndarray, limit: int, params: dict, **kw) -> list[list[dict]]:
        return [list(hits) for hits in self.client.search(
            self.c_emb, data=queries.tolist(), limit=limit, anns_field="vector", output_fields=["person_id"],
            search_params=params, consistency_level=READ_CONSISTENCY, **kw)]

    # -- checks -----------------------------------------------------------------------

    def integrity_check(self) -> list[str]:
        """Problems ([] when none): embeddings without a person, wrong counts, other models' embeddings."""
        meta = self.meta()
        people = {p.id: p for p in self.people()}
        counts: dict[int, int] = {}
        orphans = 0
        other_models: set[tuple[str, str]] = set()
        rows = (self._scan(self.c_emb, "id >= 0", ["person_id", "model", "model_version"])
                if self._has_embeddings() else [])
        for r in rows:
            if r["person_id"] in people:
                counts[r["person_id"]] = counts.get(r["person_id"], 0) + 1
            else:
                orphans += 1
            if "model" in meta and (r["model"], r["model_version"]) != (meta["model"], meta["model_version"]):
                other_models.add((r["model"], r["model_version"]))
        problems = []
        if orphans:
            problems.append(f"{orphans} embeddings belong to no person (an interrupted write; "
                            "`cnnkit faces migrate` copies only whole people)")
        empty = sum(1 for pid in people if counts.get(pid, 0) == 0)
        if empty:
            problems.append(f"{empty} people have no embedding")
        wrong = sum(1 for pid, p in people.items() if counts.get(pid, 0) not in (0, p.embeddings))
        if wrong:
            problems.append(f"{wrong} people have a photo count that differs from their embeddings")
        problems += [f"embeddings of another model: {m} {v}" for m, v in sorted(other_models)]
        return problems


def _person(row: dict) -> Person:
    metadata = row["metadata"]
    if isinstance(metadata, str):
        metadata = json.loads(metadata)
    return Person(id=int(row["id"]), name=row["name"], metadata=metadata or {}, embeddings=int(row["embeddings"]),
                  created_at=row["created_at"])


def _literal(text: str) -> str:
    """A Milvus filter's string literal (quotes and backslashes escaped)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _reason(exc: Exception) -> str:
    message = getattr(exc, "message", None) or str(exc)
    return " ".join(str(message).split())[:300]
