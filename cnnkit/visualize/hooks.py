"""Forward hooks that collect layer outputs, removed by a context manager."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress

from torch import Tensor, nn


class StopForward(Exception):
    """Raised by the hooks once every requested layer has run, so the rest of the network is skipped."""


@contextmanager
def capture(layers: Mapping[str, nn.Module], *, stop_early: bool = True) -> Iterator[dict[str, Tensor]]:
    """Within the block, each forward pass stores the output of every module of `layers` in the yielded dict.

    Clear the dict before each pass. With `stop_early`, the pass is cut short by
    `StopForward` (which the caller catches; see `run_captured`) as soon as every
    layer has been seen. The hooks are removed on exit, also when the block raises.
    """
    outputs: dict[str, Tensor] = {}

    def make_hook(name: str):
        def hook(module: nn.Module, inputs, output) -> None:
            if name in outputs:  # a module used twice in one pass: its first output counts
                return
            outputs[name] = output[0] if isinstance(output, (tuple, list)) else output
            if stop_early and len(outputs) == len(layers):
                raise StopForward
        return hook

    handles = [module.register_forward_hook(make_hook(name)) for name, module in layers.items()]
    try:
        yield outputs
    finally:
        for handle in handles:
            handle.remove()


def forward_until(forward: Callable[[Tensor], object], x: Tensor, outputs: dict[str, Tensor]) -> dict[str, Tensor]:
    """Run one pass of `x` inside `capture`; returns a copy of the captured outputs."""
    outputs.clear()
    with suppress(StopForward):
        forward(x)
    return dict(outputs)


def run_captured(forward: Callable[[Tensor], object], x: Tensor, layers: Mapping[str, nn.Module]) -> dict[str, Tensor]:
    """One forward pass of `x`; the outputs of `layers` (the rest of the network is skipped)."""
    with capture(layers) as outputs:
        return forward_until(forward, x, outputs)
