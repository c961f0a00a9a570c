"""CT volumes: the MedMNIST splits, 3-D augmentation, file formats, bad volumes, a short training run and the CLI."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cnnkit.errors import CheckpointError, VolumeError
from cnnkit.ndconv.volumes.augment import augment, symmetry_views
from cnnkit.ndconv.volumes.io import as_model_input, list_volume_files, load_split, read_volumes
from tests.conftest import DATA

ADRENAL28 = DATA / "volumes" / "adrenalmnist3d_28.npz"


@pytest.fixture(scope="module")
def adrenal28():
    if not ADRENAL28.is_file():
        pytest.skip(f"AdrenalMNIST3D not available at {ADRENAL28}")
    return ADRENAL28


def test_official_splits(adrenal28):
    sizes = {s: load_split(adrenal28, s) for s in ("train", "val", "test")}
    assert {s: len(p.labels) for s, p in sizes.items()} == {"train": 1188, "val": 98, "test": 298}
    train = sizes["train"]
    assert train.images.shape[1:] == (28, 28, 28) and train.images.dtype == np.uint8
    assert set(np.unique(train.labels)) == {0, 1}
    with pytest.raises(ValueError, match="'train', 'val', 'test'"):
        load_split(adrenal28, "dev")


def test_augmentation_moves_the_whole_volume():
    rng = np.random.default_rng(0)
    x = torch.rand(6, 1, 8, 8, 8)
    for mode in ("flips", "cube"):
        y = augment(x, rng, mode=mode)
        assert y.shape == x.shape
        # a symmetry of the cube only moves voxels: every volume keeps its values
        for a, b in zip(x, y):
            torch.testing.assert_close(a.flatten().sort().values, b.flatten().sort().values)
    shifted = augment(x, rng, mode="none", shift=2)
    assert shifted.shape == x.shape and not torch.equal(shifted, x)
    assert len(symmetry_views(x, "flips")) == 8 and len(symmetry_views(x, "cube")) == 48
    views = symmetry_views(x, "cube")
    assert len({tuple(v[0, 0].flatten()[:20].tolist()) for v in views}) == 48  # all different
    with pytest.raises(ValueError, match="use one of"):
        augment(x, rng, mode="rot90")
    with pytest.raises(ValueError, match=r"\(N, C, D, H, W\)"):
        augment(x[0], rng)


def test_file_formats(tmp_path):
    vol = np.random.default_rng(0).integers(0, 255, size=(20, 24, 28), dtype=np.uint8)
    np.save(tmp_path / "a.npy", vol)
    np.savez(tmp_path / "b.npz", first=vol, second=vol[::-1])
    np.save(tmp_path / "stack.npy", np.stack([vol, vol]))
    import nibabel

    # NIfTI stores (x, y, z); the reader gives (D, H, W) = (z, y, x)
    nibabel.save(nibabel.Nifti1Image(np.transpose(vol, (2, 1, 0)).astype(np.int16), np.eye(4)), tmp_path / "c.nii.gz")
    files = list_volume_files(tmp_path)
    assert [f.name for f in files] == ["a.npy", "b.npz", "c.nii.gz", "stack.npy"]
    read = {name: v for f in files for name, v in read_volumes(f)}
    assert set(read) == {"a.npy", "b.npz:first", "b.npz:second", "c.nii.gz", "stack.npy[0]", "stack.npy[1]"}
    assert np.array_equal(read["c.nii.gz"], vol)
    x = as_model_input(read["c.nii.gz"], 28)
    assert x.shape == (28, 28, 28) and x.dtype == np.float32 and x.min() >= 0 and x.max() <= 1


def test_bad_volumes(tmp_path):
    with pytest.raises(VolumeError, match="holds no volumes"):
        list_volume_files(tmp_path)
    np.save(tmp_path / "flat.npy", np.zeros((28, 28), dtype=np.uint8))
    with pytest.raises(VolumeError, match="3 axes"):
        read_volumes(tmp_path / "flat.npy")
    np.save(tmp_path / "text.npy", np.array([["a"] * 4] * 4))
    with pytest.raises(VolumeError, match="integers or floats"):
        read_volumes(tmp_path / "text.npy")
    (tmp_path / "broken.npy").write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(VolumeError, match="cannot read"):
        read_volumes(tmp_path / "broken.npy")
    (tmp_path / "broken.nii").write_bytes(b"not nifti at all" * 30)
    with pytest.raises(VolumeError, match="cannot read NIfTI"):
        read_volumes(tmp_path / "broken.nii")
    with pytest.raises(VolumeError, match="NaN"):
        as_model_input(np.full((4, 4, 4), np.nan, dtype=np.float32), 4)
    with pytest.raises(VolumeError, match="no such file"):
        list_volume_files(tmp_path / "missing.npy")
    with pytest.raises(VolumeError, match="no dataset file"):
        load_split(tmp_path / "missing.npz", "train")
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    with pytest.raises(VolumeError, match="MedMNIST 3D .npz is expected"):
        load_split(tmp_path / "other.npz", "train")


@pytest.fixture(scope="module")
def small_model(adrenal28, tmp_path_factory):
    """A 3D CNN trained for two epochs on a slice of the real training split (a check of the plumbing)."""
    from cnnkit.ndconv.volumes.train import VolumeSettings, save_volumes, train_volumes
    from cnnkit.runtime.training import FitSettings

    tmp = tmp_path_factory.mktemp("vol")
    with np.load(adrenal28) as z:
        small = {"train_images": z["train_images"][:96], "train_labels": z["train_labels"][:96],
                 "val_images": z["val_images"][:32], "val_labels": z["val_labels"][:32],
                 "test_images": z["test_images"][:32], "test_labels": z["test_labels"][:32]}
    np.savez(tmp / "small.npz", **small)
    settings = VolumeSettings(widths=(4, 8), tta="none", train=FitSettings(epochs=2, batch_size=16, seed=0,
                                                                             threads=1, device="cpu"))
    trained = train_volumes(tmp / "small.npz", settings=settings)
    path = save_volumes(tmp / "vol.safetensors", trained, dataset="small.npz")
    return path, tmp / "small.npz"


def test_train_evaluate_predict(small_model, tmp_path):
    from cnnkit.ndconv.checkpoint import load_checkpoint
    from cnnkit.ndconv.volumes.train import evaluate_volumes, predict_files

    path, data = small_model
    ck = load_checkpoint(path, task="volumes")
    assert ck.config.dim == 3 and ck.info["size"] == 28
    with pytest.raises(CheckpointError, match="not a 'ecg' model"):
        load_checkpoint(path, task="ecg")
    report = evaluate_volumes(path, data, split="test", device="cpu")
    assert 0 <= report["auc"] <= 1 and report["n"] == 32 and np.asarray(report["confusion"]).sum() == 32
    vol = np.load(data)["test_images"][0]
    np.save(tmp_path / "one.npy", vol)
    np.save(tmp_path / "big.npy", np.repeat(np.repeat(np.repeat(vol, 2, 0), 2, 1), 2, 2).astype(np.int16))
    preds = predict_files(path, [tmp_path], device="cpu")
    assert [p.name for p in preds] == ["big.npy", "one.npy"]
    # the same volume at twice the size (resized back, rescaled) gets nearly the same answer
    assert abs(preds[0].probabilities[1] - preds[1].probabilities[1]) < 0.1


def test_decision_threshold_is_chosen_on_validation_and_kept(small_model):
    from cnnkit.ndconv.checkpoint import load_checkpoint
    from cnnkit.ndconv.volumes.train import binary_scores, choose_threshold, decide, evaluate_volumes, predict_volumes

    labels = np.array([0, 0, 0, 0, 1, 1])
    p1 = np.array([0.05, 0.1, 0.2, 0.3, 0.35, 0.45])  # under-confident: every p < 0.5
    t = choose_threshold(labels, p1)
    assert 0.3 < t <= 0.35  # the only cut that gets all six right, nearest 0.5
    probs = np.stack([1 - p1, p1], axis=1)
    assert list(decide(probs)) == [0] * 6 and list(decide(probs, t)) == list(labels)
    scores = binary_scores(labels, probs, t)
    assert scores["acc"] == 1.0 and scores["acc_at_0.5"] == pytest.approx(4 / 6)
    assert choose_threshold(np.array([0, 1]), np.array([0.2, 0.8])) == 0.5  # 0.5 already perfect: kept
    path, data = small_model
    threshold = load_checkpoint(path, task="volumes").info["threshold"]
    assert 0 < threshold < 1
    report = evaluate_volumes(path, data, split="val", device="cpu")
    assert report["threshold"] == threshold and report["acc"] >= report["acc_at_0.5"]
    # kept from the best epoch's validation pass: the saved model's own val predictions give the same cut
    with np.load(data) as z:
        fresh = predict_volumes(load_checkpoint(path, task="volumes").model, z["val_images"], tta="none")
        assert choose_threshold(z["val_labels"].ravel(), fresh[:, 1]) == pytest.approx(threshold)


def test_cli(small_model, tmp_path, capsys):
    from cnnkit.cli.main import main

    path, data = small_model
    np.save(tmp_path / "v.npy", np.load(data)["test_images"][1])
    assert main(["ndconv", "volumes", "predict", str(tmp_path / "v.npy"), "--model", str(path),
                 "--montage", str(tmp_path / "m.png")]) == 0
    assert "v.npy: class" in capsys.readouterr().out and (tmp_path / "m.png").stat().st_size > 1000
    assert main(["ndconv", "volumes", "evaluate", "--model", str(path), "--data", str(data), "--json",
                 str(tmp_path / "r.json"), "--roc", str(tmp_path / "roc.png")]) == 0
    assert (tmp_path / "roc.png").is_file() and "AUC" in capsys.readouterr().out
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["ndconv", "volumes", "predict", str(empty), "--model", str(path)]) == 2
    err = capsys.readouterr().err
    assert "holds no volumes" in err and err.count("\n") == 1
