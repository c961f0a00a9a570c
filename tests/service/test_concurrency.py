"""Many clients at once against a real server, while another process writes to the same gallery:
no lost writes, no "database is locked" reaching a client, batches formed across requests."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading

import httpx
import pytest

import cnnkit
from cnnkit.faces.gallery import Gallery
from cnnkit.faces.gallery.store import EmbeddingRecord
from cnnkit.service import ServiceSettings
from tests.conftest import lfw_image
from tests.service.support import auth, make_keys, photo, running_server

pytestmark = pytest.mark.usefixtures("face_weights")

PEOPLE = ["Junichiro_Koizumi", "Gerhard_Schroeder", "Serena_Williams", "Tony_Blair", "Colin_Powell", "Hugo_Chavez"]

# Another process that keeps taking the gallery's write lock (holding it 50 ms each time) until told to stop.
WRITER = textwrap.dedent("""
    import sys, time
    import numpy as np
    from cnnkit.faces.gallery.store import EmbeddingRecord, GalleryStore
    store = GalleryStore(sys.argv[1])
    meta = store.meta()
    rng = np.random.default_rng(0)
    commits, stop_at = 0, time.monotonic() + 60
    print("ready", flush=True)
    while time.monotonic() < stop_at:
        with store.write() as tx:
            person = store.add_person(tx, f"writer-{commits}")
            store.add_embeddings(tx, person, [EmbeddingRecord(rng.normal(size=128).astype("f4"))],
                                 meta["model"], meta["model_version"])
            time.sleep(0.05)
        commits += 1
        if sys.stdin in __import__("select").select([sys.stdin], [], [], 0.01)[0]:
            break
    print(commits, flush=True)
""")


def test_concurrent_clients_and_an_outside_writer(tmp_path, face_weights):
    gallery = tmp_path / "busy.db"
    keys = make_keys(gallery)
    Gallery(gallery, create=True).close()  # model metadata in place before the writer starts
    settings = ServiceSettings(gallery=gallery, threads=1, batch_size=8)
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(gallery)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline().strip() == "ready"
        with running_server(settings) as url:
            results: dict[str, list] = {name: [] for name in PEOPLE}
            barrier = threading.Barrier(len(PEOPLE))

            def client(folder: str) -> None:
                name = folder.replace("_", " ")
                with httpx.Client(base_url=url, timeout=120) as http:
                    barrier.wait()
                    out = results[folder]
                    enrolled = http.post("/people", headers=auth(keys.write), data={"name": name},
                                         files={"photos": photo(folder, 1)})
                    out.append(enrolled)
                    if enrolled.status_code != 201:
                        return
                    pid = enrolled.json()["id"]
                    out.append(http.post("/identify", headers=auth(keys.read), files={"photo": photo(folder, 2)}))
                    out.append(http.post("/verify", headers=auth(keys.read), data={"person_id": str(pid)},
                                         files={"photo": photo(folder, 3)}))
                    out.append(http.post(f"/people/{pid}/photos", headers=auth(keys.write),
                                         files={"photos": photo(folder, 4)}))

            threads = [threading.Thread(target=client, args=(folder,)) for folder in PEOPLE]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=300)

            for folder, answers in results.items():
                assert [a.status_code for a in answers] == [201, 200, 200, 200], [a.text for a in answers]
                _enrolled, identified, verified, added = answers
                assert [f["name"] for f in identified.json()["faces"]] == [folder.replace("_", " ")]
                assert verified.json()["match"] is True and added.json()["embeddings"] == 2

            # Someone enrolled by another connection is found by the next identification.
            with Gallery(gallery) as outside:
                (face,) = cnnkit.encode_faces(str(lfw_image("Ai_Sugiyama", 1)))
                outside.enroll_embeddings("Ai Sugiyama", [EmbeddingRecord(face.embedding)])
            with httpx.Client(base_url=url, timeout=120) as http:
                found = http.post("/identify", headers=auth(keys.read), files={"photo": photo("Ai_Sugiyama", 2)})
                assert [f["name"] for f in found.json()["faces"]] == ["Ai Sugiyama"]
                batching = http.get("/version", headers=auth(keys.read)).json()["batching"]
        assert batching["largest_batch"] >= 2, batching  # requests that arrived together ran together
        assert batching["images"] == 4 * len(PEOPLE) + 1
    finally:
        out, _ = writer.communicate("stop\n", timeout=90)
    assert writer.returncode == 0
    writes = int(out.split()[-1])
    assert writes > 0

    with Gallery(gallery, readonly=True) as check:
        people = {p.name: p for p in check.people()}
        assert check.check() == []
    for folder in PEOPLE:
        assert people[folder.replace("_", " ")].embeddings == 2
    assert sum(name.startswith("writer-") for name in people) == writes
