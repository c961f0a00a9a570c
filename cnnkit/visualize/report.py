"""The report of a run: one grid PNG per layer (a row per unit, its top patches with their activations,
optionally each beside its projection) and an ``index.html`` that browses them, every patch linking
to the image and place it came from; plus ``result.json`` with everything `TopPatches.find` returned.
"""

from __future__ import annotations

import html
import os
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..errors import SettingsError
from .project import PROJECTION_CHOICES, project, to_picture
from .toppatches import Patch, TopPatches, TopPatchesResult

LABEL_WIDTH = 64
TEXT_HEIGHT = 14
GAP = 2
BACKGROUND = (255, 255, 255)


def _thumbnail(pixels: np.ndarray, cell: int) -> np.ndarray:
    image = Image.fromarray(pixels)
    # Small fields (layer 1 sees 3x3 pixels) are blown up without blurring; large ones are reduced smoothly.
    resample = Image.Resampling.NEAREST if max(image.size) * 2 <= cell else Image.Resampling.LANCZOS
    return np.asarray(image.resize((cell, cell), resample))


class _Views:
    """The network's views of images, made again from the originals, a bounded number kept."""

    def __init__(self, finder: TopPatches, result: TopPatchesResult, keep: int = 64) -> None:
        self.finder, self.result, self.keep = finder, result, keep
        self.cache: OrderedDict[int, np.ndarray] = OrderedDict()

    def __call__(self, image_id: int) -> np.ndarray:
        if image_id in self.cache:
            self.cache.move_to_end(image_id)
            return self.cache[image_id]
        view = self.finder.view_of(self.result, image_id)
        self.cache[image_id] = view
        if len(self.cache) > self.keep:
            self.cache.popitem(last=False)
        return view


def patch_thumbnails(finder: TopPatches, result: TopPatchesResult, *, cell: int = 64,
                     on_progress: Callable[[int, int], None] | None = None) -> dict[tuple[str, int, int], np.ndarray]:
    """(layer, unit, rank) -> the patch as a `cell` x `cell` RGB thumbnail. Each image is read once."""
    by_image: dict[int, list[tuple[str, int, int, Patch]]] = {}
    for name, lp in result.layers.items():
        for unit, patches in lp.units.items():
            for rank, patch in enumerate(patches):
                by_image.setdefault(patch.image_id, []).append((name, unit, rank, patch))
    out = {}
    for done, (image_id, items) in enumerate(sorted(by_image.items()), 1):
        view = finder.view_of(result, image_id)
        for name, unit, rank, patch in items:
            out[(name, unit, rank)] = _thumbnail(finder.patch_pixels(view, patch), cell)
        if on_progress is not None:
            on_progress(done, len(by_image))
    return out


def projection_thumbnails(finder: TopPatches, result: TopPatchesResult, *, method: str = "deconvnet",
                          cell: int = 64, on_progress: Callable[[int, int], None] | None = None,
                          ) -> dict[tuple[str, int, int], np.ndarray]:
    """(layer, unit, rank) -> the patch's projection (see project.py) as a thumbnail; one pass per unit."""
    if method not in PROJECTION_CHOICES:
        raise SettingsError(f"projection must be one of {PROJECTION_CHOICES}, got {method!r}")
    views = _Views(finder, result)
    jobs = [(name, unit, patches)
            for name, lp in result.layers.items() for unit, patches in lp.units.items() if patches]
    out = {}
    for done, (name, unit, patches) in enumerate(jobs, 1):
        stack = np.stack([views(p.image_id) for p in patches])
        grads = project(finder.model, name, unit, stack, [p.position for p in patches], method=method,
                        device=finder.device)
        for rank, (patch, grad) in enumerate(zip(patches, grads)):
            top, left, bottom, right = patch.box
            crop = np.zeros((bottom - top, right - left, 3), dtype=np.float32)
            h, w = grad.shape[:2]
            y0, x0, y1, x1 = max(top, 0), max(left, 0), min(bottom, h), min(right, w)
            crop[y0 - top: y1 - top, x0 - left: x1 - left] = grad[y0:y1, x0:x1]
            out[(name, unit, rank)] = _thumbnail(to_picture(crop), cell)
        if on_progress is not None:
            on_progress(done, len(jobs))
    return out


def render_grid(result: TopPatchesResult, layer: str, thumbs: dict, *, cell: int = 64, top: int = 9,
                projections: dict | None = None,
                ) -> tuple[Image.Image, list[tuple[int, int, tuple[int, int, int, int]]]]:
    """The grid of `layer`: a row per unit, its patches left to right (best first), activations below.

    Returns the picture and, for the report's image map, (unit, rank, (x0, y0, x1, y1)) of every patch.
    """
    lp = result.layers[layer]
    per_patch = cell * (2 if projections else 1) + (GAP if projections else 0)
    width = LABEL_WIDTH + top * (per_patch + GAP)
    row_height = cell + TEXT_HEIGHT + GAP
    header = 18
    image = Image.new("RGB", (width, header + row_height * max(len(lp.units), 1)), BACKGROUND)
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default()
    field = lp.field.to_dict()
    what = ("whole image" if lp.field.whole
            else f"field {field['size'][0]}x{field['size'][1]} px, stride {field['stride'][0]}")
    draw.text((4, 3), f"{result.model} {layer}: {what}, top {top} of {result.images_seen} images"
                      + (" (patch | projection)" if projections else ""), fill=(0, 0, 0), font=font)
    areas = []
    for row, (unit, patches) in enumerate(lp.units.items()):
        y = header + row * row_height
        draw.text((4, y + cell // 2 - 6), f"unit {unit}", fill=(0, 0, 0), font=font)
        for rank, patch in enumerate(patches):
            x = LABEL_WIDTH + rank * (per_patch + GAP)
            image.paste(Image.fromarray(thumbs[(layer, unit, rank)]), (x, y))
            if projections:
                image.paste(Image.fromarray(projections[(layer, unit, rank)]), (x + cell + GAP, y))
            draw.text((x + 1, y + cell + 1), f"{patch.activation:.3g}", fill=(40, 40, 40), font=font)
            areas.append((unit, rank, (x, y, x + per_patch, y + cell)))
    return image, areas


def write_report(finder: TopPatches, result: TopPatchesResult, out_dir: str | os.PathLike[str], *,
                 cell: int = 64, projection: str | None = None,
                 on_progress: Callable[[str, int, int], None] | None = None) -> Path:
    """Write ``<layer>.png`` for every layer, ``index.html`` and ``result.json`` under `out_dir`; the index's path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    result.save_json(out / "result.json")
    step = (lambda stage: (lambda d, t: on_progress(stage, d, t))) if on_progress else (lambda stage: None)
    thumbs = patch_thumbnails(finder, result, cell=cell, on_progress=step("patches"))
    projections = None
    if projection:
        projections = projection_thumbnails(finder, result, method=projection, cell=cell,
                                            on_progress=step(f"{projection} projections"))
    sections, toc = [], []
    for layer, lp in result.layers.items():
        grid, areas = render_grid(result, layer, thumbs, cell=cell, top=finder.top, projections=projections)
        file = f"{_safe(layer)}.png"
        grid.save(out / file, optimize=True)
        anchor = f"layer-{_safe(layer)}"
        toc.append(f'<li><a href="#{anchor}">{html.escape(layer)}</a> ({len(lp.units)} units of {lp.channels})</li>')
        area_html = []
        for unit, rank, (x0, y0, x1, y1) in areas:
            patch = lp.units[unit][rank]
            # from the report's folder to the image, wherever the run named it from
            link = os.path.relpath(os.path.abspath(patch.source), out.resolve())
            sx0, sy0, sx1, sy1 = (round(v) for v in patch.source_box)
            title = (f"{layer} unit {unit} #{rank + 1}: activation {patch.activation:.4g}; {patch.source}, "
                     f"box x {sx0}..{sx1}, y {sy0}..{sy1} of the original (view box {patch.box})")
            area_html.append(f'<area shape="rect" coords="{x0},{y0},{x1},{y1}" href="{html.escape(link)}" '
                             f'title="{html.escape(title)}" alt="{html.escape(title)}">')
        sections.append(
            f'<section id="{anchor}"><h2>{html.escape(layer)}</h2>'
            f'<p>Receptive field: {html.escape(_readable(lp.field.to_dict()))}. '
            f'Hover over a patch for its image and place; click it to open the image.</p>'
            f'<img src="{file}" usemap="#map-{anchor}" width="{grid.width}" height="{grid.height}" '
            f'alt="{html.escape(layer)}">'
            f'<map name="map-{anchor}">{"".join(area_html)}</map></section>')
    skipped = ""
    if result.skipped:
        items = "".join(f"<li>{html.escape(k)}: {html.escape(v)}</li>" for k, v in list(result.skipped.items())[:200])
        skipped = f"<details><summary>{len(result.skipped)} images skipped</summary><ul>{items}</ul></details>"
    view = html.escape(_readable(result.view))
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>cnnkit visualize: {html.escape(result.model)}</title>
<style>body{{font-family:sans-serif;margin:1.5em}} img{{image-rendering:auto;border:1px solid #ccc}}</style></head>
<body><h1>What the units of {html.escape(result.model)} respond to</h1>
<p>For each unit, the {finder.top} image patches (of {result.images_seen} images, {view})
that excite it most, best first, each cut by the unit's receptive field (padding shown in the network's padding
colour). Numbers are activations. Data: <a href="result.json">result.json</a>.</p>
<ul>{''.join(toc)}</ul>{skipped}
{''.join(sections)}
</body></html>
"""
    (out / "index.html").write_text(page)
    return out / "index.html"


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def _readable(values: object) -> str:
    """A settings dict as words for the page ("kind resize-crop, size 224"), not as JSON."""
    if not isinstance(values, dict):
        return str(values)
    return ", ".join(f"{str(k).replace('_', ' ')} {_readable(v) if isinstance(v, dict) else v}"
                     for k, v in values.items())
