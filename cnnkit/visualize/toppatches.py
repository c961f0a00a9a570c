"""Zeiler & Fergus's top patches: for chosen units of chosen layers, the dataset patches that excite each most.

`TopPatches(model, layers)` is built once; its verb `find(images)` streams the
images through the network in batches (one pass for all layers, hooks removed
after), keeps a bounded top-k per unit, and returns a `TopPatchesResult`:
per layer and unit, the top patches with their image, box and activation.
With `state_dir`, progress is saved every few batches and a later call with
``resume=True`` goes on from there.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..errors import (
    CnnkitError,
    ImageTooSmallError,
    NoFaceError,
    NoImagesError,
    SettingsError,
    StateMismatchError,
    UntraceableModelError,
)
from ..images import load_image
from .data import FaceChips, ResizeCrop, box_in_original, crop_box
from .hooks import capture, forward_until
from .models import VisualModel, load_model
from .receptive import ReceptiveField, Trace, trace
from .topk import TopK

log = logging.getLogger(__name__)

STATE_VERSION = 1


@dataclass(frozen=True)
class Patch:
    """One top patch of a unit.

    `box` is ``(top, left, bottom, right)`` in the pixels of the network's view
    of the image (bottom/right exclusive): the unit's receptive field from the
    layer arithmetic, the same size for every unit of a layer. It may reach
    outside the view; the patch is then padded. `support` is the part of the
    view that can really influence the unit (inside the view; smaller than
    `box` near edges where a feature map stops short). `source_box` is the
    bounding box ``(x0, y0, x1, y1)`` of `box` in the original image;
    `position` is the unit's (row, col) in its feature map.
    """

    image_id: int
    source: str
    activation: float
    position: tuple[int, int]
    box: tuple[int, int, int, int]
    support: tuple[int, int, int, int]
    source_box: tuple[float, float, float, float]


@dataclass
class LayerPatches:
    layer: str
    field: ReceptiveField
    channels: int
    units: dict[int, list[Patch]]


@dataclass
class TopPatchesResult:
    """What `TopPatches.find` found: per layer, per unit, the top patches, best first."""

    model: str
    view: dict
    layers: dict[str, LayerPatches]
    images: list[str]
    view_to_image: dict[int, list[list[float]]] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    images_seen: int = 0
    #: seconds spent this call: "read" (decoding), "prepare" (views / face chips), "forward", "topk"
    timings: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "model": self.model, "view": self.view, "images_seen": self.images_seen, "skipped": self.skipped,
            "layers": {
                name: {"receptive_field": lp.field.to_dict(), "channels": lp.channels,
                       "units": {str(u): [asdict(p) for p in patches] for u, patches in lp.units.items()}}
                for name, lp in self.layers.items()},
        }

    def save_json(self, path: str | os.PathLike[str]) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=1))


def parse_units(units: str | int | Sequence[int], channels: int) -> list[int]:
    """``"all"``, a count N (the first N units), or unit ids (``[3, 17]``, or ``"3,17,40-47"`` as text)."""
    if isinstance(units, str):
        text = units.strip()
        if text == "all":
            return list(range(channels))
        if text.isdigit():
            units = int(text)
        else:
            ids: list[int] = []
            try:
                for part in filter(None, (p.strip() for p in text.split(","))):
                    lo, _, hi = part.partition("-")
                    ids.extend(range(int(lo), int(hi or lo) + 1))
            except ValueError:
                raise SettingsError(f"units must be 'all', a count N or unit ids like '3,17,40-47', "
                                    f"got {units!r}") from None
            units = ids
    if isinstance(units, int):
        if units < 1:
            raise SettingsError(f"units: a count must be positive, got {units}")
        return list(range(min(units, channels)))
    ids = list(dict.fromkeys(int(u) for u in units))
    bad = [u for u in ids if not 0 <= u < channels]
    if bad or not ids:
        raise SettingsError(f"unit ids must lie in 0..{channels - 1}, got {bad or 'none'}")
    return ids


class TopPatches:
    """Top-k patches of hidden units (Zeiler & Fergus), built from ``(model, layers)``.

    `model`: "vgg19", "face-encoder", the folder of a saved face encoder, an
    `nn.Module` (layers named by their dotted module paths) or a `VisualModel`.
    `units`: see `parse_units` (the same choice for every layer). `size`: the
    side of the square view of each image (ignored for face chips).
    """

    def __init__(self, model: str | nn.Module | VisualModel, layers: Sequence[str], *,
                 units: str | int | Sequence[int] = "all", top: int = 9, size: int | None = None,
                 device: str | torch.device = "cpu", batch_size: int = 16) -> None:
        if top < 1:
            raise SettingsError(f"top must be positive, got {top}")
        if batch_size < 1:
            raise SettingsError(f"batch_size must be positive, got {batch_size}")
        self.device = torch.device(device)
        self.model = load_model(model, device=self.device)
        self.layer_names = list(dict.fromkeys(layers))
        self.modules = self.model.modules_for(self.layer_names)
        self.top, self.batch_size = top, batch_size
        side = self.model.chips or size or self.model.default_size
        if side < 1:
            raise SettingsError(f"size must be positive, got {side}")
        self.trace = self._trace(side)
        self.fields = self.trace.fields
        self.channels = {}
        for name, shape in self.trace.shapes.items():
            if len(shape) != 4:
                raise UntraceableModelError(f"layer {name!r} outputs a tensor of shape {shape}, not a feature map "
                                            "(N, C, H, W); pick a convolutional layer")
            self.channels[name] = shape[1]
        self.units = {name: parse_units(units, self.channels[name]) for name in self.layer_names}
        smallest = min(self.fields[n].size[0] if not self.fields[n].whole else 1 for n in self.layer_names)
        if smallest > side:
            raise ImageTooSmallError(f"a {side}x{side} view is smaller than the receptive field of every layer "
                                     f"asked for (the smallest is {smallest} pixels); use a larger size")
        if self.model.chips:
            self.preparer: ResizeCrop | FaceChips = FaceChips(self.model.chips, str(self.device))
        else:
            # An original smaller than the deepest layer's field (or than the view) would be blown up to fill it.
            deepest = max((self.fields[n].size[0] for n in self.layer_names if not self.fields[n].whole), default=1)
            self.preparer = ResizeCrop(side, min_side=min(side, deepest))

    def _trace(self, side: int) -> Trace:
        example = torch.full((1, 3, side, side), 128.0, device=self.device)
        try:
            return trace(self.model.module, self.modules, self.model.to_input(example), forward=self.model.run)
        except RuntimeError as exc:  # e.g. a feature map shrunk to nothing
            raise ImageTooSmallError(f"the model cannot run on a {side}x{side} view ({exc}); use a larger size "
                                     "or shallower layers") from None

    @property
    def view(self) -> dict:
        p = self.preparer
        return {"kind": "face-chip" if isinstance(p, FaceChips) else "resize-crop", "size": p.size}

    def fingerprint(self, images: Sequence[str]) -> str:
        blob = json.dumps([self.model.name, self.layer_names, self.units, self.top, self.view, list(images)])
        return hashlib.sha256(blob.encode()).hexdigest()

    # ------------------------------------------------------------------------------------------------
    def find(self, images: Sequence[str], *, state_dir: str | os.PathLike[str] | None = None,
             resume: bool = False, checkpoint_every: int = 8, threads: int = 2,
             on_progress: Callable[[int, int], None] | None = None) -> TopPatchesResult:
        """Stream `images` (paths, in order) through the network once; the top patches of every unit.

        `on_progress(done, total)` is called after each batch. Unreadable images
        (and, for face chips, images without a face) are skipped and listed in
        the result's `skipped`; an image too small for the layers raises
        `ImageTooSmallError`.
        """
        images = [str(p) for p in images]
        tops = {name: TopK(len(self.units[name]), self.top) for name in self.layer_names}
        maps: dict[int, list[list[float]]] = {}
        skipped: dict[str, str] = {}
        done = 0
        state = Path(state_dir) if state_dir is not None else None
        if state is not None and resume and (state / "state.json").exists():
            done, maps, skipped = self._load_state(state, images, tops)
            log.info("resuming after %d of %d images", done, len(images))
        unit_index = {name: torch.tensor(self.units[name], device=self.device) for name in self.layer_names}
        batches = 0
        timings = dict.fromkeys(("read", "prepare", "forward", "topk"), 0.0)
        clock = time.perf_counter
        with ThreadPoolExecutor(max_workers=max(1, threads)) as pool, capture(self.modules) as outputs:
            def load(start: int):
                return [pool.submit(_read, path) for path in images[start: start + self.batch_size]]

            pending = load(done) if done < len(images) else []
            while pending:
                tick = clock()
                loaded = [f.result() for f in pending]
                timings["read"] += clock() - tick
                start = done
                done += len(loaded)
                pending = load(done) if done < len(images) else []
                ok = []
                for offset, (_image, error) in enumerate(loaded):
                    if error is not None:
                        skipped[images[start + offset]] = error
                    else:
                        ok.append(start + offset)
                tick = clock()
                views = self.preparer.prepare([loaded[i - start][0] for i in ok], [images[i] for i in ok]) if ok else []
                timings["prepare"] += clock() - tick
                kept = []
                for index, prepared in zip(ok, views):
                    if prepared is None:
                        skipped[images[index]] = "no face found"
                        continue
                    maps[index] = prepared[1].tolist()
                    kept.append((index, prepared[0]))
                if kept:
                    batch = torch.from_numpy(np.stack([v for _, v in kept])).to(self.device)
                    x = self.model.to_input(batch.permute(0, 3, 1, 2).float())
                    ids = torch.tensor([i for i, _ in kept])
                    with torch.no_grad():
                        tick = clock()
                        found = forward_until(self.model.run, x, outputs)
                        if self.device.type == "cuda":
                            torch.cuda.synchronize(self.device)
                        timings["forward"] += clock() - tick
                        tick = clock()
                        for name in self.layer_names:
                            act = self.model.activation(name, found[name]).index_select(1, unit_index[name])
                            tops[name].update(act, ids)
                        timings["topk"] += clock() - tick
                batches += 1
                if state is not None and (batches % checkpoint_every == 0 or not pending):
                    self._save_state(state, images, tops, done, maps, skipped)
                if on_progress is not None:
                    on_progress(done, len(images))
        if images and len(skipped) == len(images):  # nothing to show: an error, not an empty report
            first, why = next(iter(skipped.items()))
            raise NoImagesError(f"none of the {len(images)} images could be used (e.g. {first}: {why})")
        result = self._result(images, tops, maps, skipped, done)
        result.timings = timings
        return result

    # ------------------------------------------------------------------------------------------------
    def _result(self, images, tops, maps, skipped, done) -> TopPatchesResult:
        layers = {}
        for name in self.layer_names:
            top, rf = tops[name], self.fields[name]
            units: dict[int, list[Patch]] = {}
            side = self.preparer.size
            supports = self.trace.support(name, top.rows.numpy().ravel(), top.cols.numpy().ravel())
            supports = supports.reshape(top.rows.shape + (4,))
            for row, unit in enumerate(self.units[name]):
                patches = []
                for j in range(top.values.shape[1]):
                    image_id = int(top.images[row, j])
                    position = (int(top.rows[row, j]), int(top.cols[row, j]))
                    box = _int_box(rf.box(*position, image_size=(side, side)))
                    patches.append(Patch(image_id=image_id, source=images[image_id],
                                         activation=float(top.values[row, j]), position=position, box=box,
                                         support=_int_box(supports[row, j]),
                                         source_box=box_in_original(box, np.asarray(maps[image_id]))))
                units[unit] = patches
            layers[name] = LayerPatches(name, rf, self.channels[name], units)
        return TopPatchesResult(model=self.model.name, view=self.view, layers=layers, images=images,
                                view_to_image=maps, skipped=skipped, images_seen=done)

    def _save_state(self, state: Path, images, tops, done, maps, skipped) -> None:
        state.mkdir(parents=True, exist_ok=True)
        arrays = {f"{name}/{key}": value for name, top in tops.items() for key, value in top.state().items()}
        tmp = state / "state.npz.tmp"
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
        meta = {"version": STATE_VERSION, "fingerprint": self.fingerprint(images), "done": done,
                "view_to_image": {str(k): v for k, v in maps.items()}, "skipped": skipped}
        (state / "state.json.tmp").write_text(json.dumps(meta))
        os.replace(tmp, state / "state.npz")  # arrays first: a json always has its arrays
        os.replace(state / "state.json.tmp", state / "state.json")

    def _load_state(self, state: Path, images, tops) -> tuple[int, dict, dict]:
        meta = json.loads((state / "state.json").read_text())
        if meta.get("version") != STATE_VERSION or meta.get("fingerprint") != self.fingerprint(images):
            raise StateMismatchError(f"{state}: the saved run used another model, layers, units, top, size or "
                                     "image list; run without --resume to start over, or use another output folder")
        with np.load(state / "state.npz", allow_pickle=False) as data:
            for name in self.layer_names:
                tops[name] = TopK.from_state({k: data[f"{name}/{k}"] for k in ("values", "images", "rows", "cols")},
                                             self.top)
        return int(meta["done"]), {int(k): v for k, v in meta["view_to_image"].items()}, dict(meta["skipped"])

    # ------------------------------------------------------------------------------------------------
    def view_of(self, result: TopPatchesResult, image_id: int) -> np.ndarray:
        """The network's view (H, W, 3 uint8) of image `image_id` of `result`, made again from the original."""
        image = load_image(result.images[image_id])
        return self.preparer.reproduce(image, np.asarray(result.view_to_image[image_id]))

    def view_of_path(self, path: str | os.PathLike[str]) -> np.ndarray:
        """The network's view (H, W, 3 uint8) of the image at `path` (`NoFaceError` for a chip model and no face)."""
        prepared = self.preparer.prepare([load_image(path)], [str(path)])[0]
        if prepared is None:
            raise NoFaceError(f"{path}: no face found")
        return prepared[0]

    def patch_pixels(self, view: np.ndarray, patch: Patch) -> np.ndarray:
        """The pixels of `patch` cut from its image's view, padded with the network's padding colour."""
        return crop_box(view, patch.box, self.model.pad_rgb)


def _int_box(values) -> tuple[int, int, int, int]:
    """(top, left, bottom, right) as Python ints."""
    top, left, bottom, right = (int(v) for v in values)
    return top, left, bottom, right


def _read(path: str) -> tuple[np.ndarray | None, str | None]:
    try:
        return load_image(path), None
    except CnnkitError as exc:
        return None, str(exc)
