"""Moving a gallery to another encoder from its photos, saying clearly which photos were not there."""

from __future__ import annotations

import shutil

import numpy as np

from cnnkit.cli.main import main
from cnnkit.faces.gallery import Gallery
from cnnkit.faces.gallery.reencode import reencode_gallery
from tests.conftest import lfw_image


def test_reencode_keeps_people_and_lists_missing_photos(tmp_path, face_weights, capsys):
    photos = {}
    for name, n in (("Colin_Powell", 1), ("Colin_Powell", 2), ("Serena_Williams", 1), ("Ai_Sugiyama", 1)):
        photos[(name, n)] = tmp_path / f"{name}_{n}.jpg"
        shutil.copyfile(lfw_image(name, n), photos[(name, n)])
    old = tmp_path / "old.db"
    with Gallery(old, create=True, encoder="dlib-resnet-v1", device="cpu") as g:
        colin = g.enroll("Colin Powell", [photos[("Colin_Powell", 1)], photos[("Colin_Powell", 2)]],
                         metadata={"desk": 7})
        serena = g.enroll("Serena Williams", [photos[("Serena_Williams", 1)]])
        ai = g.enroll("Ai Sugiyama", [photos[("Ai_Sugiyama", 1)]])
    photos[("Colin_Powell", 2)].unlink()            # one of Colin's photos is gone
    photos[("Ai_Sugiyama", 1)].write_bytes(b"x")    # Ai's only photo changed: not hers any more
    with Gallery(old, readonly=True) as source, Gallery(tmp_path / "new.db", create=True, device="cpu") as target:
        report = reencode_gallery(source, target)
        assert target.model.encoder == "sface-2021dec"
        assert (report.people, report.photos) == (2, 2)
        assert {p["source"] for p in report.photos_left_out} == {str(photos[("Colin_Powell", 2)]),
                                                                 str(photos[("Ai_Sugiyama", 1)])}
        assert [p["id"] for p in report.people_left_out] == [ai.id]
        moved = target.person(colin.id)
        assert (moved.name, moved.metadata, moved.embeddings) == ("Colin Powell", {"desk": 7}, 1)
        assert target.person(serena.id).name == "Serena Williams"
        # the same embedding a fresh SFace enrollment of that photo stores
        with Gallery(tmp_path / "fresh.db", create=True, device="cpu") as fresh:
            p = fresh.enroll("Colin", [photos[("Colin_Powell", 1)]])
            assert np.abs(fresh.embeddings_of(p.id) - target.embeddings_of(colin.id)).max() < 1e-3
    code = main(["faces", "reencode", "--from", str(old), "--to", str(tmp_path / "cli.db"), "--device", "cpu"])
    out = capsys.readouterr().out
    assert code == 1 and "re-encoded 2 people (2 photos)" in out and "the gallery keeps file names" in out
