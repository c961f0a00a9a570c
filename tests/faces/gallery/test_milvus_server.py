"""A Milvus-server gallery across a crash of its writer: kill -9 during bulk enrollment, as for SQLite.

Milvus has no transactions across collections; the store's order of writes
(vectors first, the person row last) must keep every person whole: everyone
reported enrolled is there with all their photos, nobody is half-written, and
vectors left by the killed write are invisible to search and to `enroll-tree`'s
skip list, and reported by `check`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from cnnkit.faces.gallery import Gallery
from cnnkit.faces.gallery.store import EmbeddingRecord
from tests.faces.gallery.test_durability import PHOTOS_PER_PERSON, WORKER

pytestmark = pytest.mark.milvus_server

@pytest.mark.parametrize("run", range(3))
def test_kill_during_bulk_enrollment_into_a_milvus_server(milvus_server, run):
    where = f"milvus://{milvus_server}/crash_{run}"
    rng = np.random.default_rng(run)
    reported: list[str] = []
    for round_ in range(2):  # kill, then resume and kill again
        proc = subprocess.Popen([sys.executable, "-c", WORKER, where, str(run * 10 + round_)],
                                stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        assert proc.stdout.readline().strip() == "ready"
        # The first enrollment can take seconds on a loaded machine (the server creates the collection):
        # wait for it, then kill at a random moment of the bulk enrollment that follows.
        first = proc.stdout.readline()
        assert first.startswith("enrolled "), f"the worker stopped before enrolling anyone: {first!r}"
        time.sleep(float(rng.uniform(0.0, 2.0)))
        proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate()
        reported += [line.split()[1] for line in (first + out).splitlines() if line.startswith("enrolled ")]
        assert proc.returncode == -signal.SIGKILL

    with Gallery(where) as gallery:
        people = gallery.people()
        names = {p.name for p in people}
        assert set(reported) <= names
        assert len(names - set(reported)) <= 2  # committed, killed before printing
        assert len(names) == len(people)  # nobody twice
        assert all(p.embeddings == PHOTOS_PER_PERSON for p in people)  # nobody half-written
        rows = gallery.store.embedding_rows()
        ids = {p.id for p in people}
        assert {r["person_id"] for r in rows} == ids
        assert all(sum(r["person_id"] == p.id for r in rows) == PHOTOS_PER_PERSON for p in people)
        # Every vector in the collection either belongs to a whole person or is an orphan that check reports.
        orphans = gallery.store.count() - len(rows)
        problems = gallery.check()
        assert [p for p in problems if "belong to no person" not in p] == []
        assert bool(problems) == (orphans > 0)
        # Orphans are invisible: searching at their place finds only whole people.
        probe = np.random.default_rng(0).normal(size=(8, 128)).astype(np.float32)
        assert {h.person_id for hits in gallery.search(probe, top_k=5) for h in hits} <= ids
        assert gallery.store.source_hashes() == {f"{n[len('person'):]}-{k}" for n in names
                                                 for k in range(PHOTOS_PER_PERSON)}
        # and the gallery goes on: the next writer resumes after everyone stored.
        assert gallery.enroll_embeddings("after", [EmbeddingRecord(vector=probe[0])]).id > max(ids)
