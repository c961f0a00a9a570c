"""Kill a bulk enrollment at random moments: nothing reported enrolled is lost, nobody is half-written."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from cnnkit.faces.gallery import Gallery

PHOTOS_PER_PERSON = 3

# Enrolls person0, person1, ... (three embeddings each), printing a line after each commit (also the Milvus
# server's crash test, test_milvus_server.py).
WORKER = f"""
import sys
import numpy as np
from cnnkit.faces.gallery import Gallery
from cnnkit.faces.gallery.store import EmbeddingRecord

gallery = Gallery(sys.argv[1], create=True)
rng = np.random.default_rng(int(sys.argv[2]))
start = len(gallery.people())
print("ready", flush=True)
for i in range(start, start + 100000):
    vectors = rng.normal(size=({PHOTOS_PER_PERSON}, 128)).astype(np.float32)
    gallery.enroll_embeddings(f"person{{i}}", [EmbeddingRecord(vector=v, source=f"p{{i}}_{{k}}.jpg",
                                                               source_sha256=f"{{i}}-{{k}}")
                                               for k, v in enumerate(vectors)])
    print(f"enrolled person{{i}}", flush=True)
"""


@pytest.mark.parametrize("run", range(6))
def test_kill_during_bulk_enrollment(tmp_path, run):
    path = tmp_path / "bulk.db"
    rng = np.random.default_rng(run)
    reported: list[str] = []
    for round_ in range(2):  # kill, then resume and kill again
        proc = subprocess.Popen([sys.executable, "-c", WORKER, str(path), str(run * 10 + round_)],
                                stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(float(rng.uniform(0.05, 1.5)))  # a random moment of the bulk enrollment
        proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate()
        reported += [line.split()[1] for line in out.splitlines() if line.startswith("enrolled ")]
        assert proc.returncode == -signal.SIGKILL
    assert reported, "the worker never got to enroll anyone; give it more time"

    with Gallery(path) as gallery:
        assert gallery.check() == []
        people = gallery.people()
        names = {p.name for p in people}
        # Everyone reported is there; at most one more per kill (committed, killed before printing).
        assert set(reported) <= names
        assert len(names - set(reported)) <= 2
        assert all(p.embeddings == PHOTOS_PER_PERSON for p in people)  # nobody half-written
        assert len(names) == len(people)  # and nobody twice
