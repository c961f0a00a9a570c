"""Top patches with a planted answer, and the streaming top-k against brute force, batch sizes and resuming."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from cnnkit.errors import StateMismatchError
from cnnkit.visualize import TopPatches
from cnnkit.visualize.topk import TopK

SIZE = 48
# A 5x5 "plus" with a dark ring: what unit 1 of the detector looks for.
PATTERN = np.array([[-1, -1, 1, -1, -1],
                    [-1, 0, 1, 0, -1],
                    [1, 1, 1, 1, 1],
                    [-1, 0, 1, 0, -1],
                    [-1, -1, 1, -1, -1]], dtype=np.float32)


class Detector(nn.Module):
    """conv 3x3 (channel 0 copies the gray image) -> ReLU -> conv 5x5 stride 2 (unit 1 matches PATTERN).

    Unit 1's receptive field is 7x7: the 5x5 window, widened by one pixel each
    side by the first layer. Its unit (i, j) is centred on input pixel (2i, 2j).
    """

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.features = nn.Conv2d(3, 3, 3, padding=1)
        self.detect = nn.Conv2d(3, 4, 5, stride=2, padding=2)
        with torch.no_grad():
            self.features.weight.zero_()
            self.features.bias.zero_()
            self.features.weight[0, :, 1, 1] = 1.0 / 3  # gray, 0..1
            self.features.weight[1:].normal_(0, 0.1)
            self.detect.weight.normal_(0, 0.01)
            self.detect.bias.zero_()
            self.detect.weight[1] = 0.0
            self.detect.weight[1, 0] = torch.from_numpy(PATTERN - PATTERN.mean())

    def forward(self, x):
        return self.detect(torch.relu(self.features(x)))


def noise_image(rng: np.random.Generator) -> np.ndarray:
    return rng.normal(128, 12, size=(SIZE, SIZE, 3)).clip(0, 255)


def plant(image: np.ndarray, top: int, left: int, contrast: float) -> None:
    patch = 128 + contrast * PATTERN
    # Cut the pattern where it leaves the image (planted partly outside).
    y0, x0 = max(top, 0), max(left, 0)
    y1, x1 = min(top + 5, SIZE), min(left + 5, SIZE)
    image[y0:y1, x0:x1] = patch[y0 - top: y1 - top, x0 - left: x1 - left, None]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """40 noise images; 12 hold the pattern (centre on even pixels) with decreasing contrast."""
    rng = np.random.default_rng(7)
    folder = tmp_path_factory.mktemp("planted")
    places = {}
    planted_in = rng.permutation(40)[:12]
    for i in range(40):
        image = noise_image(rng)
        if i in planted_in:
            rank = int(np.nonzero(planted_in == i)[0][0])
            cy, cx = (int(v) * 2 for v in rng.integers(2, SIZE // 2 - 2, size=2))
            if rank == 3:
                cy, cx = 2, SIZE - 4  # at the top edge: its box leaves the image by a row
            plant(image, cy - 2, cx - 2, contrast=100 - 5 * rank)
            places[i] = (rank, cy, cx)
        Image.fromarray(image.astype(np.uint8)).save(folder / f"img{i:02d}.png")
    return sorted(str(p) for p in folder.glob("*.png")), places


def test_top_patches_are_the_planted_places(dataset):
    paths, places = dataset
    finder = TopPatches(Detector(), ["detect"], units=[1], top=9, size=SIZE, batch_size=7)
    result = finder.find(paths)
    assert finder.fields["detect"].size == (7, 7)
    patches = result.layers["detect"].units[1]
    expected = sorted((rank, i, cy, cx) for i, (rank, cy, cx) in places.items())[:9]
    assert [p.image_id for p in patches] == [i for _, i, _, _ in expected]
    for patch, (_, _, cy, cx) in zip(patches, expected):
        assert patch.position == (cy // 2, cx // 2)
        assert patch.box == (cy - 3, cx - 3, cy + 4, cx + 4)
        assert patch.support == (max(cy - 3, 0), max(cx - 3, 0), min(cy + 4, SIZE), min(cx + 4, SIZE))
        # The crop is exactly the planted pattern with a one-pixel ring, padded outside the image.
        view = finder.view_of(result, patch.image_id)
        crop = finder.patch_pixels(view, patch).astype(np.float32)
        assert crop.shape == (7, 7, 3)
        inner = crop[1:6, 1:6, 0]
        if cy - 3 < 0:
            assert (crop[: 3 - cy] == np.asarray(finder.model.pad_rgb, dtype=np.float32)).all()
        known = PATTERN != 0
        assert (np.sign(inner[known] - 128) == np.sign(PATTERN[known])).all()
    assert patches[0].activation > patches[-1].activation


def brute_force(finder: TopPatches, paths: list[str], layer: str, k: int) -> dict[int, list[tuple[int, float]]]:
    """Every image through the network at once; per unit the k best (image, value), ties to the earlier image."""
    views = [finder.view_of_path(p) for p in paths]
    x = finder.model.to_input(torch.from_numpy(np.stack(views)).permute(0, 3, 1, 2).float())
    with torch.no_grad():
        out = finder.model.module(x)
    best = out.flatten(2).max(2).values  # (N, C)
    result = {}
    for unit in finder.units[layer]:
        order = sorted(range(len(paths)), key=lambda i: (-float(best[i, unit]), i))[:k]
        result[unit] = [(i, float(best[i, unit])) for i in order]
    return result


def test_streaming_matches_brute_force_for_every_batch_size(dataset):
    paths, _ = dataset
    expected = None
    for batch_size in (1, 5, 40):
        finder = TopPatches(Detector(), ["detect"], units="all", top=4, size=SIZE, batch_size=batch_size)
        got = {u: [(p.image_id, p.activation) for p in ps]
               for u, ps in finder.find(paths).layers["detect"].units.items()}
        if expected is None:
            expected = brute_force(finder, paths, "detect", 4)
        assert {u: [i for i, _ in v] for u, v in got.items()} == {u: [i for i, _ in v] for u, v in expected.items()}
        for unit in got:
            assert np.allclose([v for _, v in got[unit]], [v for _, v in expected[unit]], rtol=1e-5, atol=1e-6)


def test_resume_after_interruption_gives_the_same_result(dataset, tmp_path):
    paths, _ = dataset
    full = TopPatches(Detector(), ["detect"], units=3, top=5, size=SIZE, batch_size=6).find(paths)
    finder = TopPatches(Detector(), ["detect"], units=3, top=5, size=SIZE, batch_size=6)

    def stop_after_three(done: int, total: int) -> None:
        if done >= 18:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        finder.find(paths, state_dir=tmp_path, checkpoint_every=1, on_progress=stop_after_three)
    # The hooks went away with the interrupted run.
    assert all(not m._forward_hooks for m in finder.model.module.modules())
    seen = []
    resumed = finder.find(paths, state_dir=tmp_path, resume=True, on_progress=lambda d, t: seen.append(d))
    assert seen[0] == 24  # went on after the 18 images already done
    assert resumed.to_dict() == full.to_dict()
    # Another setting with the same state folder is refused, not mixed in.
    other = TopPatches(Detector(), ["detect"], units=3, top=6, size=SIZE, batch_size=6)
    with pytest.raises(StateMismatchError, match="without --resume"):
        other.find(paths, state_dir=tmp_path, resume=True)


def test_topk_keeps_k_best_and_breaks_ties_by_image_order():
    top = TopK(2, 3)
    a = torch.tensor([[[[1.0, 5.0]], [[2.0, 2.0]]], [[[5.0, 0.0]], [[2.0, 1.0]]]])  # (2 images, 2 units, 1x2)
    top.update(a, torch.tensor([0, 1]))
    top.update(a, torch.tensor([2, 3]))
    assert top.images[0].tolist() == [0, 1, 2] and top.values[0].tolist() == [5.0, 5.0, 5.0]
    assert top.cols[0].tolist() == [1, 0, 1]
    assert top.images[1].tolist() == [0, 1, 2]
    restored = TopK.from_state(top.state(), 3)
    assert torch.equal(restored.values, top.values) and torch.equal(restored.images, top.images)
