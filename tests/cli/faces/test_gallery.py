"""The gallery from the command line, on real LFW photos: enroll, verify, identify, and the errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from cnnkit.images import load_image
from tests.cli.conftest import run
from tests.conftest import LFW, lfw_image

pytestmark = pytest.mark.usefixtures("face_weights")


@pytest.fixture
def office(tmp_path, capsys):
    """A gallery with three people, each enrolled from a single photo."""
    gallery = str(tmp_path / "office.db")
    for name, photo in (("Abdullah Gul", lfw_image("Abdullah_Gul", 1)),
                        ("Ai Sugiyama", lfw_image("Ai_Sugiyama", 1)),
                        ("Adrien Brody", lfw_image("Adrien_Brody", 1))):
        code, out, _ = run(capsys, "faces", "enroll", "--gallery", gallery, name, str(photo))
        assert code == 0 and f"enrolled {name}" in out
    return gallery


def test_verify_exit_status(office, capsys):
    code, out, _ = run(capsys, "faces", "verify", "--gallery", office, "Abdullah Gul",
                       str(lfw_image("Abdullah_Gul", 3)))
    assert code == 0 and out.startswith("match") and "threshold" in out
    code, out, _ = run(capsys, "faces", "verify", "--gallery", office, "Abdullah Gul",
                       str(lfw_image("Aaron_Eckhart", 1)))
    assert code == 1 and out.startswith("no match")
    code, _, err = run(capsys, "faces", "verify", "--gallery", office, "Nobody", str(lfw_image("Aaron_Eckhart", 1)))
    assert code == 2 and "nobody called 'Nobody'" in err


def test_identify_json_known_and_strangers_in_order(office, capsys, tmp_path):
    # One picture with a known person and a stranger side by side, then a photo of nobody, then garbage.
    pair = np.concatenate([load_image(lfw_image("Ai_Sugiyama", 2)), load_image(lfw_image("Aaron_Eckhart", 1))], 1)
    both = tmp_path / "two.png"
    Image.fromarray(pair).save(both)
    empty = tmp_path / "wall.png"
    Image.fromarray(np.full((200, 200, 3), 90, np.uint8)).save(empty)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 nope")
    code, out, _ = run(capsys, "faces", "identify", "--gallery", office, str(both), str(empty), str(broken),
                       "--json", "--top-k", "2")
    assert code == 2  # one input could not be read: an error (the others are answered)
    data = json.loads(out)
    assert [d["image"] for d in data] == [str(both), str(empty), str(broken)]
    faces = sorted(data[0]["faces"], key=lambda f: f["box"][0])
    assert [f["name"] for f in faces] == ["Ai Sugiyama", None]
    assert all(len(f["box"]) == 4 and len(f["candidates"]) == 2 for f in faces)
    assert faces[0]["distance"] <= faces[0]["threshold"] < faces[1]["distance"]
    assert data[1]["image"] == str(empty) and data[1]["faces"] == []
    point = data[1]["operating_point"]  # the 1:K threshold for this gallery's size
    assert point["people"] == 3 and point["fpir"] == 0.01 and point["threshold"] == faces[0]["threshold"]
    assert "error" in data[2]


def test_enroll_errors_store_nothing(office, capsys, tmp_path):
    wall = tmp_path / "wall.png"
    Image.fromarray(np.full((200, 200, 3), 90, np.uint8)).save(wall)
    code, _, err = run(capsys, "faces", "enroll", "--gallery", office, "Ghost", str(lfw_image("Aaron_Eckhart", 1)),
                       str(wall))
    assert code == 2 and "no face found" in err and "nothing was enrolled" in err
    group = tmp_path / "group.png"
    Image.fromarray(np.concatenate([load_image(lfw_image("Aaron_Eckhart", 1)),
                                    load_image(lfw_image("Adrien_Brody", 2))], 1)).save(group)
    code, _, err = run(capsys, "faces", "enroll", "--gallery", office, "Group", str(group))
    assert code == 2 and "faces found" in err
    code, out, _ = run(capsys, "faces", "people", "--gallery", office, "--json")
    assert sorted(p["name"] for p in json.loads(out)) == ["Abdullah Gul", "Adrien Brody", "Ai Sugiyama"]
    code, out, _ = run(capsys, "faces", "enroll", "--gallery", office, "Aaron", str(group), "--largest")
    assert code == 0


def test_duplicate_names_need_an_id(office, capsys):
    code, _, _ = run(capsys, "faces", "enroll", "--gallery", office, "Ai Sugiyama", str(lfw_image("Aaron_Eckhart", 1)),
                     "--new-person")
    assert code == 0
    code, out, _ = run(capsys, "faces", "people", "--gallery", office)
    assert out.count("(same name as another person)") == 2
    code, _, err = run(capsys, "faces", "verify", "--gallery", office, "Ai Sugiyama", str(lfw_image("Ai_Sugiyama", 2)))
    assert code == 2 and "say which by id" in err
    people = json.loads(run(capsys, "faces", "people", "--gallery", office, "--json")[1])
    first = min(p["id"] for p in people if p["name"] == "Ai Sugiyama")
    code, out, _ = run(capsys, "faces", "verify", "--gallery", office, f"#{first}", str(lfw_image("Ai_Sugiyama", 2)))
    assert code == 0


def test_more_photos_rename_remove_export_import_check(office, capsys, tmp_path):
    code, out, _ = run(capsys, "faces", "enroll", "--gallery", office, "Abdullah Gul",
                       str(lfw_image("Abdullah_Gul", 2)))
    assert "2 photo(s)" in out
    assert run(capsys, "faces", "rename", "--gallery", office, "Adrien Brody", "A. Brody")[0] == 0
    code, out, _ = run(capsys, "faces", "remove", "--gallery", office, "Ai Sugiyama")
    assert code == 0 and "removed Ai Sugiyama" in out
    exported = tmp_path / "office.npz"
    assert run(capsys, "faces", "export", "--gallery", office, str(exported))[0] == 0
    copy = str(tmp_path / "copy.db")
    code, out, _ = run(capsys, "faces", "import", "--gallery", copy, str(exported))
    assert code == 0 and "imported 2 people, 3 embeddings" in out
    code, out, _ = run(capsys, "faces", "check", "--gallery", copy)
    assert code == 0 and out.startswith("ok: 2 people, 3 embeddings")
    code, out, _ = run(capsys, "faces", "identify", "--gallery", copy, str(lfw_image("Adrien_Brody", 3)))
    assert "A. Brody" in out


def test_export_into_a_new_folder_and_import_twice(office, capsys, tmp_path):
    exported = tmp_path / "not" / "yet" / "office.npz"
    code, out, _ = run(capsys, "faces", "export", "--gallery", office, str(exported))
    assert code == 0 and exported.is_file() and (exported.parent.stat().st_mode & 0o777) == 0o700
    code, _, err = run(capsys, "faces", "export", "--gallery", office, str(tmp_path))
    assert code == 2 and err.count("\n") == 1 and "is a folder" in err
    copy = str(tmp_path / "copy.db")
    assert "imported 3 people" in run(capsys, "faces", "import", "--gallery", copy, str(exported))[1]
    code, out, _ = run(capsys, "faces", "import", "--gallery", copy, str(exported))  # the same file again
    assert code == 0 and "imported 0 people" in out and "skipped 3 people already in" in out
    code, out, _ = run(capsys, "faces", "people", "--gallery", copy)
    assert out.startswith("3 people in") and [line.split()[0] for line in out.splitlines()[1:]] == ["#1", "#2", "#3"]


def test_importing_a_photo_is_one_line(office, capsys):
    code, out, err = run(capsys, "faces", "import", "--gallery", office, str(lfw_image("Adrien_Brody", 3)))
    assert code == 2 and out == "" and err.count("\n") == 1
    assert "not a cnnkit gallery export" in err and "pickle" not in err


def test_calibrate_records_how_the_threshold_was_set(office, capsys, tmp_path):
    lfw_image("Abdullah_Gul", 1)
    rows = ["1\t3", "Abdullah_Gul\t1\t3", "Adrien_Brody\t1\t2", "Ai_Sugiyama\t1\t2",
            "Aaron_Eckhart\t1\tAi_Sugiyama\t1", "Abdullah_Gul\t2\tAdrien_Brody\t3", "Ai_Sugiyama\t2\tAbdullah_Gul\t1"]
    pairs = tmp_path / "pairs.txt"
    pairs.write_text("\n".join(rows) + "\n")
    code, out, _ = run(capsys, "faces", "calibrate", "--gallery", office, "--pairs", str(pairs),
                       "--images", str(LFW / "images"), "--far", "0.1")
    assert code == 0 and "threshold" in out
    from cnnkit.faces.gallery import Gallery

    with Gallery(office) as g:
        source = g.threshold_source
        assert source["method"] == "calibrate" and source["far_target"] == 0.1 and source["pairs_count"] == 6
        assert 0.3 < g.threshold < 2.0  # a distance between unit-length embeddings


def test_gallery_that_is_not_a_gallery(capsys, tmp_path):
    junk = tmp_path / "junk.db"
    junk.write_text("definitely not sqlite" * 50)
    code, _, err = run(capsys, "faces", "people", "--gallery", str(junk))
    assert code == 2 and "not a cnnkit gallery" in err
    code, _, err = run(capsys, "faces", "identify", "--gallery", str(tmp_path / "none.db"),
                       str(lfw_image("Aaron_Eckhart", 1)))
    assert code == 2 and "no such gallery" in err


def test_a_portrait_with_a_small_face_behind_enrolls_the_portrait(capsys, tmp_path):
    big = Image.fromarray(load_image(lfw_image("Adrien_Brody", 1))).resize((500, 500))
    small = Image.fromarray(load_image(lfw_image("Aaron_Eckhart", 1))).resize((160, 160))
    canvas = Image.new("RGB", (660, 500), (40, 40, 40))
    canvas.paste(big, (0, 0))
    canvas.paste(small, (500, 340))
    photo = tmp_path / "portrait.png"
    canvas.save(photo)
    gallery = str(tmp_path / "g.db")
    assert run(capsys, "faces", "enroll", "--gallery", gallery, "Adrien", str(photo))[0] == 0
    code, out, _ = run(capsys, "faces", "verify", "--gallery", gallery, "Adrien", str(lfw_image("Adrien_Brody", 2)))
    assert code == 0, out


def test_a_first_milvus_lite_enrollment_prints_no_traceback(tmp_path):
    """Milvus Lite has no AllocTimestamp; its in-process gRPC server logged a traceback per ask (four)."""
    import subprocess
    import sys

    pytest.importorskip("milvus_lite")
    done = subprocess.run([sys.executable, "-m", "cnnkit", "faces", "enroll", "--gallery",
                           f"milvus-lite://{tmp_path / 'm.db'}", "Adrien Brody", str(lfw_image("Adrien_Brody", 1))],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.startswith("enrolled Adrien Brody (#1)"), done.stderr
    assert "Traceback" not in done.stderr and "not implemented" not in done.stderr, done.stderr
