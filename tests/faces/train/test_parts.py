"""The binary head, the P x K sampler, augmentation, checkpoints and the gallery's head decision."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from cnnkit.errors import WeightsError
from cnnkit.faces.train.augment import Augment
from cnnkit.faces.train.binary_head import (
    BinaryHead,
    BinaryHeadLoss,
    fit_binary_head,
    load_head,
    pair_features,
    save_head,
)
from cnnkit.faces.train.sampler import PKSampler


def test_pair_features_match_loops():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(6, 5, generator=g), torch.randn(6, 5, generator=g)
    a[0, 0], b[0, 0] = 0.0, 0.0                     # 0/0 is taken as 0
    ab = pair_features(a, b, "abs")
    chi = pair_features(a, b, "chi2")
    assert ab.shape == (6, 5) and chi.shape == (6, 10)
    for i in range(6):
        for k in range(5):
            x, y = float(a[i, k]), float(b[i, k])
            assert float(ab[i, k]) == pytest.approx(abs(x - y), abs=1e-6)
            pos = [(max(x, 0) - max(y, 0)), max(x, 0) + max(y, 0)]
            neg = [(max(-x, 0) - max(-y, 0)), max(-x, 0) + max(-y, 0)]
            want_pos = pos[0] ** 2 / pos[1] if pos[1] > 0 else 0.0
            want_neg = neg[0] ** 2 / neg[1] if neg[1] > 0 else 0.0
            assert float(chi[i, k]) == pytest.approx(want_pos, rel=1e-5, abs=1e-6)
            assert float(chi[i, 5 + k]) == pytest.approx(want_neg, rel=1e-5, abs=1e-6)
            if x * y < 0:  # opposite signs: the two parts add up to |x - y|
                assert float(chi[i, k] + chi[i, 5 + k]) == pytest.approx(abs(x - y), rel=1e-5)
    assert torch.isfinite(chi).all()
    with pytest.raises(ValueError, match="abs"):
        pair_features(a, b, "cosine")


def _synthetic_pairs(n: int = 400, dim: int = 16, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(50, dim))
    ia, ib = rng.integers(0, 50, n), rng.integers(0, 50, n)
    same = rng.random(n) < 0.5
    ib = np.where(same, ia, ib)
    same = ia == ib
    a = centres[ia] + 0.3 * rng.normal(size=(n, dim))
    b = centres[ib] + 0.3 * rng.normal(size=(n, dim))
    return a.astype(np.float32), b.astype(np.float32), same


@pytest.mark.parametrize("kind", ["abs", "chi2"])
def test_fit_binary_head_learns_to_verify(kind):
    a, b, same = _synthetic_pairs()
    head = fit_binary_head(a[:300], b[:300], same[:300], features=kind)
    accuracy = np.mean((head.probability(a[300:], b[300:]) >= 0.5) == same[300:])
    assert accuracy > 0.95
    with pytest.raises(ValueError, match="both"):
        fit_binary_head(a[:10], b[:10], np.ones(10, bool))


def test_binary_head_loss_trains_end_to_end():
    torch.manual_seed(0)
    labels = torch.arange(8).repeat_interleave(4)
    centres = torch.randn(8, 6)
    x = centres[labels] + 0.2 * torch.randn(32, 6)
    head = BinaryHead(6, features="abs")
    loss_fn = BinaryHeadLoss(head)
    opt = torch.optim.Adam(head.parameters(), lr=0.05)
    first = None
    for _ in range(100):
        loss = loss_fn(x, labels)
        first = float(loss.detach()) if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss.detach()) < 0.5 * first and loss_fn.stats["active"] < 0.1


def test_head_save_load_and_damage(tmp_path):
    a, b, same = _synthetic_pairs(dim=8)
    head = fit_binary_head(a, b, same, features="chi2")
    save_head(head, tmp_path / "h", embedding_model={"encoder": "x", "version": "v", "flip": True})
    loaded, config = load_head(tmp_path / "h")
    assert config["features"] == "chi2" and config["embedding_model"]["encoder"] == "x"
    np.testing.assert_allclose(loaded.probability(a, b), head.probability(a, b), rtol=1e-6)
    weights = tmp_path / "h" / "head.safetensors"
    weights.write_bytes(weights.read_bytes()[:-4] + b"\0\0\0\0")
    with pytest.raises(WeightsError, match="sha256"):
        load_head(tmp_path / "h")
    with pytest.raises(WeightsError, match="no binary head"):
        load_head(tmp_path / "nothing")


def test_pk_sampler_batches_and_seeding():
    labels = np.repeat(np.arange(10), [2, 3, 5, 2, 8, 2, 2, 4, 3, 6])
    sampler = PKSampler(labels, p=4, k=3, seed=1)
    batches = list(sampler.epoch(0))
    assert len(batches) == len(sampler) == 2
    seen = []
    for batch in batches:
        assert batch.shape == (12,)
        people = labels[batch].reshape(4, 3)
        assert (people == people[:, :1]).all() and len(set(people[:, 0])) == 4
        seen += list(people[:, 0])
        for person, idx in zip(people[:, 0], batch.reshape(4, 3)):
            if (labels == person).sum() >= 3:
                assert len(set(idx)) == 3       # no repeats when the person has enough photos
    assert len(set(seen)) == 8                  # no person twice before all have been seen
    assert all(np.array_equal(x, y) for x, y in zip(batches, sampler.epoch(0)))
    assert not all(np.array_equal(x, y) for x, y in zip(batches, sampler.epoch(1)))
    with pytest.raises(ValueError, match="at least 2"):
        PKSampler(labels, p=4, k=1)
    with pytest.raises(ValueError, match="people"):
        PKSampler(labels, p=11, k=2)
    with pytest.raises(ValueError, match="2 images"):
        PKSampler(np.array([0, 0, 1, 2, 2]), p=2, k=2)


def test_augment_keeps_shape_range_and_is_seeded():
    chips = torch.rand(6, 3, 32, 32) * 255
    aug = Augment()
    out1 = aug(chips, torch.Generator().manual_seed(3))
    out2 = aug(chips, torch.Generator().manual_seed(3))
    assert out1.shape == chips.shape and torch.equal(out1, out2)
    assert float(out1.min()) >= 0 and float(out1.max()) <= 255
    assert not torch.allclose(out1, chips)
    still = Augment(flip=False, min_scale=1.0, max_shift=0.0, brightness=0.0, contrast=0.0, saturation=0.0)
    torch.testing.assert_close(still(chips), chips, atol=1e-3, rtol=0)
    with pytest.raises(ValueError, match="min_scale"):
        Augment(min_scale=0.1)


def test_gallery_decides_with_a_binary_head(tmp_path):
    from cnnkit.faces.gallery import Gallery
    from cnnkit.faces.gallery.store import EmbeddingRecord, GalleryError

    rng = np.random.default_rng(0)
    gallery = Gallery(tmp_path / "g.db", create=True)
    alice = rng.normal(size=128).astype(np.float32) * 0.1
    gallery.enroll_embeddings("Alice", [EmbeddingRecord(vector=alice, source="a.jpg", box=(0, 0, 1, 1))])
    # A head that says "same" when the vectors are within ~0.6 of each other (per-dimension |diff| sum).
    head = BinaryHead(128, features="abs")
    with torch.no_grad():
        head.weight.fill_(-1.0)
        head.bias.fill_(3.0)
    model = gallery.model
    save_head(head, tmp_path / "head", embedding_model={"encoder": model.encoder, "version": model.version,
                                                          "flip": model.flip})
    gallery.close()
    with Gallery(tmp_path / "g.db", head=tmp_path / "head") as g:
        near = alice + 0.01
        far = alice + 0.5
        answers = g.identify_embeddings(np.stack([near, far]))
        assert answers[0].name == "Alice" and answers[1].name is None
    save_head(head, tmp_path / "other", embedding_model={"encoder": "saved:x", "version": "v", "flip": True})
    with pytest.raises(GalleryError, match="trained on embeddings"):
        Gallery(tmp_path / "g.db", head=tmp_path / "other")
    assert json.loads((tmp_path / "head" / "head.json").read_text())["dim"] == 128


@pytest.mark.parametrize("loss,miner", [("triplet", "semihard"), ("triplet", "batch-hard"), ("triplet", "random"),
                                        ("triplet", "all"), ("contrastive", "all"), ("binary", "all")])
def test_every_loss_and_miner_trains_a_projection(tmp_path, loss, miner):
    from cnnkit.faces.train.loop import EmbeddingData, PairValidation, TrainSettings, train

    rng = np.random.default_rng(0)
    centres = rng.normal(size=(30, 8))
    labels = np.repeat(np.arange(30), 4)
    # Identity lives in 8 of 16 dimensions; the other 8 are loud noise a projection must learn to drop.
    vectors = np.concatenate([centres[labels] + 0.1 * rng.normal(size=(120, 8)), 3 * rng.normal(size=(120, 8))], 1)
    first, second = np.arange(0, 120, 2), np.arange(1, 120, 2)
    second[30:] = (second[30:] + 8) % 120              # half the pairs: other people
    same = labels[first] == labels[second]
    validation = PairValidation(torch.tensor(vectors, dtype=torch.float32), first, second, same,
                                np.zeros(len(same)), flip=False)
    layer = torch.nn.Linear(16, 8, bias=False)
    before = validation.evaluate(layer, torch.device("cpu"))["auc"]
    settings = TrainSettings(loss=loss, miner=miner, distance="l2", margin=0.5, epochs=4, batch_p=6, batch_k=4,
                             batches_per_epoch=10, lr=0.02, weight_decay=0.0, augment=False, seed=0)
    result, head = train(layer, EmbeddingData(vectors, labels), settings, out=tmp_path, architecture="linear",
                         arguments={}, embedding_dim=8, validation=validation)
    after = result.epochs[-1].validation["auc"]
    assert after > max(before, 0.9)
    assert (head is not None) == (loss == "binary")
    assert all(np.isfinite(s.loss) and 0 <= s.active_fraction <= 1 for s in result.steps)
