"""`cnnkit faces train` end to end on a small identity folder of real LFW photos."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from cnnkit.cli.main import main
from tests.conftest import LFW

PEOPLE = ["Alvaro_Uribe", "Amelie_Mauresmo", "Andre_Agassi", "Ari_Fleischer", "Atal_Bihari_Vajpayee", "Bill_Gates"]


@pytest.fixture(scope="module")
def identity_folder(tmp_path_factory) -> Path:
    if not (LFW / "images").is_dir():
        pytest.skip(f"LFW not available at {LFW}")
    root = tmp_path_factory.mktemp("ids")
    for person in PEOPLE:
        (root / person).mkdir()
        for src in sorted((LFW / "images" / person).glob("*.jpg"))[:4]:
            shutil.copyfile(src, root / person / src.name)
    (root / "Only_Once").mkdir()       # one image: no positive, skipped with a count
    shutil.copyfile(LFW / "images" / "Aaron_Eckhart" / "Aaron_Eckhart_0001.jpg",
                    root / "Only_Once" / "Only_Once_0001.jpg")
    (root / PEOPLE[0] / "broken.jpg").write_bytes(b"not a jpeg")  # unreadable: logged and skipped
    pairs = ["3"]
    pairs += [f"{p}\t1\t2" for p in PEOPLE[:3]]
    pairs += [f"{PEOPLE[i]}\t1\t{PEOPLE[i + 3]}\t2" for i in range(3)]
    (root / "pairs.txt").write_text("\n".join(pairs) + "\n")
    return root


def _train(root: Path, out: Path, cache: Path, *extra: str) -> int:
    return main(["faces", "train", "--data", str(root), "--out", str(out), "--cache", str(cache),
                 "--encoder", "small-resnet", "--width", "8", "--blocks", "1,1,1,1", "--chip-size", "64",
                 "--batch-p", "3", "--batch-k", "2", "--batches-per-epoch", "2", "--device", "cpu",
                 "--val-pairs", str(root / "pairs.txt"), *extra])


def test_train_save_resume_and_load(identity_folder, tmp_path, capsys, face_weights):
    cache, out = tmp_path / "cache", tmp_path / "model"
    assert _train(identity_folder, out, cache, "--epochs", "1", "--json", str(tmp_path / "r.json")) == 0
    printed = capsys.readouterr().out
    assert "6 people" in printed and "1 people skipped" in printed and "1 unreadable" in printed
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["images"] == 24 and report["result"]["epochs"][0]["validation"]["accuracy"] >= 0.0
    config = json.loads((out / "config.json").read_text())
    assert config["architecture"] == "small-resnet" and config["chip_size"] == 64 and "threshold" in config
    steps = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert [s["kind"] for s in steps] == ["step", "step", "epoch"]
    assert all(0.0 <= s["active_fraction"] <= 1.0 for s in steps if s["kind"] == "step")

    # The cache makes a second run skip detection: the landmark file is not rewritten.
    stamp = (cache / "landmarks-v1.npz").stat().st_mtime_ns
    assert _train(identity_folder, out, cache, "--epochs", "2", "--resume") == 0
    assert (cache / "landmarks-v1.npz").stat().st_mtime_ns == stamp
    steps = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert [s["epoch"] for s in steps if s["kind"] == "epoch"] == [0, 1]

    # The saved model is an encoder every cnnkit command loads by path.
    from cnnkit.faces.recognizer import Recognizer

    chips = np.full((2, 64, 64, 3), 128, np.uint8)
    emb = Recognizer(str(out), device="cpu").embed_chips(chips)
    assert emb.shape == (2, 128) and np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-4)
    capsys.readouterr()
    assert main(["faces", "evaluate", "--pairs", str(identity_folder / "pairs.txt"), "--images",
                 str(identity_folder), "--encoder", str(out), "--device", "cpu"]) == 0
    assert "accuracy_mean" in capsys.readouterr().out


def test_resume_refuses_another_architecture(identity_folder, tmp_path, capsys):
    cache, out = tmp_path / "cache", tmp_path / "model"
    assert _train(identity_folder, out, cache, "--epochs", "1") == 0
    code = _train(identity_folder, out, cache, "--epochs", "2", "--resume", "--embedding-dim", "64")
    assert code == 2
    assert "checkpoint of small-resnet" in capsys.readouterr().err


def test_nan_loss_stops_and_keeps_the_checkpoint(identity_folder, tmp_path, capsys):
    cache, out = tmp_path / "cache", tmp_path / "model"
    assert _train(identity_folder, out, cache, "--epochs", "1") == 0
    before = (out / "checkpoint" / "model.safetensors").read_bytes()
    code = _train(identity_folder, out, cache, "--epochs", "3", "--resume", "--lr", "1e30")
    err = capsys.readouterr().err
    assert code == 2 and "loss became nan" in err.lower() and "last good checkpoint (epoch" in err
    state = json.loads((out / "checkpoint" / "state.json").read_text())
    assert state["epoch"] in (0, 1)
    if state["epoch"] == 0:
        assert (out / "checkpoint" / "model.safetensors").read_bytes() == before


def test_empty_and_single_image_datasets_are_clear_errors(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["faces", "train", "--data", str(empty), "--out", str(tmp_path / "m")]) == 2
    assert "no images found" in capsys.readouterr().err
    singles = tmp_path / "singles"
    for name in ("A", "B"):
        (singles / name).mkdir(parents=True)
        (singles / name / "x.jpg").write_bytes(b"x")
    assert main(["faces", "train", "--data", str(singles), "--out", str(tmp_path / "m"),
                 "--cache", str(tmp_path / "c")]) == 2
    assert "0 people with at least 2" in capsys.readouterr().err


def test_bad_settings_name_the_choices(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["faces", "train", "--data", str(tmp_path), "--out", str(tmp_path / "m"), "--miner", "hardest"])
    assert "semihard" in capsys.readouterr().err


def test_frozen_dlib_projection_and_binary_head(identity_folder, tmp_path, capsys, face_weights):
    cache = tmp_path / "cache"
    common = ["faces", "train", "--data", str(identity_folder), "--cache", str(cache), "--encoder", "dlib-resnet-v1",
              "--freeze-encoder", "--batch-p", "3", "--batch-k", "2", "--batches-per-epoch", "3", "--epochs", "2",
              "--device", "cpu", "--val-pairs", str(identity_folder / "pairs.txt")]
    proj = tmp_path / "proj"
    assert main([*common, "--out", str(proj), "--distance", "l2", "--embedding-dim", "64"]) == 0
    config = json.loads((proj / "config.json").read_text())
    assert config["architecture"] == "dlib-resnet-projection" and config["embedding_dim"] == 64
    from cnnkit.faces.recognizer import Recognizer

    chips = np.full((1, 150, 150, 3), 100, np.uint8)
    assert Recognizer(str(proj), device="cpu").embed_chips(chips).shape == (1, 64)

    head_dir = tmp_path / "head"
    assert main([*common, "--out", str(head_dir), "--loss", "binary", "--head-features", "chi2"]) == 0
    assert "binary head for dlib-resnet-v1" in capsys.readouterr().out
    assert not (head_dir / "config.json").exists()   # the encoder is the pretrained one, unchanged
    from cnnkit.faces.gallery import Gallery

    with Gallery(tmp_path / "g.db", create=True, encoder="dlib-resnet-v1", head=head_dir) as gallery:
        assert gallery.head is not None and gallery.head.features == "chi2"
