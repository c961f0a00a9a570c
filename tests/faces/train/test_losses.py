"""Losses, distances and miners against plain Python loops on random data."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from cnnkit.faces.train.distances import CosineSimilarity, L2Distance, make_distance
from cnnkit.faces.train.losses import ContrastiveLoss, TripletMarginLoss, triplet_active_fraction
from cnnkit.faces.train.miners import AllTripletsMiner, BatchHardMiner, RandomTripletsMiner, SemiHardMiner, make_miner

DISTANCES = ["squared-l2", "l2", "cosine"]


def _data(seed: int = 0, people: int = 5, per: int = 4, dim: int = 8):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(people * per, dim, generator=g, dtype=torch.float64)
    labels = torch.arange(people).repeat_interleave(per)
    perm = torch.randperm(len(labels), generator=g)
    return x[perm], labels[perm]


def _d(name: str, u, v) -> float:
    u, v = np.asarray(u, float), np.asarray(v, float)
    if name == "squared-l2":
        return float(((u - v) ** 2).sum())
    if name == "l2":
        return math.sqrt(((u - v) ** 2).sum())
    return float(u @ v / (np.linalg.norm(u) * np.linalg.norm(v)))


def _violation(name: str, dap: float, dan: float, margin: float) -> float:
    return (dan - dap + margin) if name == "cosine" else (dap - dan + margin)


def _all_triplets(labels):
    n = len(labels)
    return [(a, p, q) for a, p, q in itertools.product(range(n), repeat=3)
            if a != p and labels[a] == labels[p] and labels[q] != labels[a]]


@pytest.mark.parametrize("name", DISTANCES)
def test_pairwise_distance_matches_loop(name):
    x, _ = _data()
    dist = make_distance(name)
    m = dist.pairwise(x, x).numpy()
    for i, j in [(0, 1), (3, 7), (5, 5), (19, 2)]:
        assert m[i, j] == pytest.approx(_d(name, x[i], x[j]), abs=1e-9)
    np.testing.assert_allclose(dist.paired(x[:5], x[5:10]).numpy(),
                               [_d(name, x[i], x[i + 5]) for i in range(5)], atol=1e-9)
    assert dist.larger_is_closer == (name == "cosine")


def test_l2_gradient_is_finite_at_zero_distance():
    x = torch.randn(4, 3, requires_grad=True)
    L2Distance().pairwise(x, x).sum().backward()
    assert torch.isfinite(x.grad).all()


def test_all_triplets_miner_matches_loop():
    x, labels = _data()
    a, p, n = AllTripletsMiner()(x, labels)
    assert sorted(zip(a.tolist(), p.tolist(), n.tolist())) == _all_triplets(labels.tolist())


@pytest.mark.parametrize("name", DISTANCES)
@pytest.mark.parametrize("margin", [0.0, 0.3, 1.0])
def test_triplet_loss_matches_loop(name, margin):
    x, labels = _data(seed=1)
    loss_fn = TripletMarginLoss(margin=margin, distance=make_distance(name))
    got = float(loss_fn(x, labels))
    values = [max(0.0, _violation(name, _d(name, x[a], x[p]), _d(name, x[a], x[n]), margin))
              for a, p, n in _all_triplets(labels.tolist())]
    assert got == pytest.approx(float(np.mean(values)), rel=1e-9, abs=1e-12)
    assert loss_fn.stats["triplets"] == len(values)
    assert loss_fn.stats["active"] == pytest.approx(np.mean([v > 0 for v in values]))


def test_triplet_loss_on_given_indices_and_reductions():
    x, labels = _data(seed=2)
    trip = BatchHardMiner(L2Distance(squared=True))(x, labels)
    for reduction in ("mean", "sum", "mean-nonzero"):
        got = float(TripletMarginLoss(margin=0.5, reduction=reduction)(x, labels, trip))
        vals = np.array([max(0.0, _d("squared-l2", x[a], x[p]) - _d("squared-l2", x[a], x[n]) + 0.5)
                         for a, p, n in zip(*[t.tolist() for t in trip])])
        want = {"mean": vals.mean(), "sum": vals.sum(),
                "mean-nonzero": vals[vals > 0].mean() if (vals > 0).any() else 0.0}[reduction]
        assert got == pytest.approx(want, rel=1e-9)


def test_empty_triplets_give_zero_loss_with_a_graph():
    x = torch.randn(4, 3, requires_grad=True)
    labels = torch.tensor([0, 1, 2, 3])  # nobody has a positive
    loss = TripletMarginLoss()(x, labels)
    assert float(loss.detach()) == 0.0
    loss.backward()
    assert x.grad is not None


@pytest.mark.parametrize("name", DISTANCES)
def test_batch_hard_miner_matches_loop(name):
    x, labels = _data(seed=3)
    a, p, n = BatchHardMiner(make_distance(name))(x, labels)
    lab = labels.tolist()
    assert sorted(a.tolist()) == list(range(len(lab)))
    for ai, pi, ni in zip(a.tolist(), p.tolist(), n.tolist()):
        pos = [j for j in range(len(lab)) if j != ai and lab[j] == lab[ai]]
        neg = [j for j in range(len(lab)) if lab[j] != lab[ai]]
        hardest_p = max(pos, key=lambda j: -_d(name, x[ai], x[j]) if name == "cosine" else _d(name, x[ai], x[j]))
        hardest_n = min(neg, key=lambda j: -_d(name, x[ai], x[j]) if name == "cosine" else _d(name, x[ai], x[j]))
        assert pi == hardest_p and ni == hardest_n


@pytest.mark.parametrize("name", DISTANCES)
@pytest.mark.parametrize("margin", [0.2, 1.0])
def test_semihard_miner_matches_loop(name, margin):
    x, labels = _data(seed=4)
    a, p, n = SemiHardMiner(make_distance(name), margin=margin)(x, labels)
    got = set(zip(a.tolist(), p.tolist(), n.tolist()))
    lab = labels.tolist()
    want = set()
    for ai in range(len(lab)):
        for pi in range(len(lab)):
            if pi == ai or lab[pi] != lab[ai]:
                continue
            dap = _d(name, x[ai], x[pi])
            cands = []
            for ni in range(len(lab)):
                if lab[ni] == lab[ai]:
                    continue
                dan = _d(name, x[ai], x[ni])
                farther = dan < dap if name == "cosine" else dan > dap
                if farther and _violation(name, dap, dan, margin) > 0:
                    cands.append((-dan if name == "cosine" else dan, ni))
            if cands:
                want.add((ai, pi, min(cands)[1]))
    assert got == want
    assert len(want) > 0  # the random data does have semi-hard triplets at these margins


def test_random_miner_one_valid_negative_per_positive_pair_and_seeded():
    x, labels = _data(seed=5)
    run = [RandomTripletsMiner(generator=torch.Generator().manual_seed(7))(x, labels) for _ in range(2)]
    a, p, n = run[0]
    lab = labels.tolist()
    pairs = [(i, j) for i in range(len(lab)) for j in range(len(lab)) if i != j and lab[i] == lab[j]]
    assert sorted(zip(a.tolist(), p.tolist())) == pairs
    assert all(lab[ni] != lab[ai] for ai, ni in zip(a.tolist(), n.tolist()))
    assert all(torch.equal(u, v) for u, v in zip(run[0], run[1]))
    other = RandomTripletsMiner(generator=torch.Generator().manual_seed(8))(x, labels)[2]
    assert not torch.equal(n, other)


def test_miners_do_not_carry_gradients():
    x, labels = _data()
    x.requires_grad_(True)
    for name in ("semihard", "batch-hard", "random", "all"):
        for t in make_miner(name)(x, labels):
            assert not t.requires_grad and t.dtype == torch.long


@pytest.mark.parametrize("name", ["l2", "cosine"])
def test_contrastive_loss_matches_loop(name):
    x, labels = _data(seed=6)
    dist = make_distance(name)
    got = float(ContrastiveLoss(distance=dist)(x, labels))
    lab = labels.tolist()
    pos, neg = [], []
    for i, j in itertools.combinations(range(len(lab)), 2):
        d = _d(name, x[i], x[j])
        if lab[i] == lab[j]:
            pos.append(max(0.0, (1.0 - d) if name == "cosine" else d) ** 2)
        else:
            neg.append(max(0.0, d if name == "cosine" else 1.0 - d) ** 2)
    assert got == pytest.approx(np.mean(pos) + np.mean(neg), rel=1e-9)


def test_contrastive_loss_on_triplets_uses_their_pairs():
    x, labels = _data(seed=7)
    trip = BatchHardMiner()(x, labels)
    got = float(ContrastiveLoss(pos_margin=0.1, neg_margin=2.0)(x, labels, trip))
    a, p, n = [t.tolist() for t in trip]
    pos = [max(0.0, _d("l2", x[i], x[j]) - 0.1) ** 2 for i, j in zip(a, p)]
    neg = [max(0.0, 2.0 - _d("l2", x[i], x[j])) ** 2 for i, j in zip(a, n)]
    assert got == pytest.approx(np.mean(pos) + np.mean(neg), rel=1e-9)


@pytest.mark.parametrize("name", DISTANCES)
def test_active_fraction_matches_loop(name):
    x, labels = _data(seed=8)
    got = triplet_active_fraction(x, labels, margin=0.3, distance=make_distance(name))
    vals = [_violation(name, _d(name, x[a], x[p]), _d(name, x[a], x[n]), 0.3) > 0
            for a, p, n in _all_triplets(labels.tolist())]
    assert got == pytest.approx(np.mean(vals))


def test_bad_settings_name_the_choices():
    with pytest.raises(ValueError, match="semihard"):
        make_miner("hardest")
    with pytest.raises(ValueError, match="squared-l2"):
        make_distance("manhattan")
    with pytest.raises(ValueError, match="reduction"):
        TripletMarginLoss(reduction="max")


def test_cosine_margin_violation_direction():
    d = CosineSimilarity()
    # positive very similar, negative dissimilar: no violation
    assert float(d.margin_violation(torch.tensor(0.9), torch.tensor(0.1), 0.2)) < 0
