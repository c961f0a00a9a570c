"""VGG19's layer names and sizes as plain constants (no PyTorch), for the settings and the command line."""

from __future__ import annotations

#: Conv layers per block (64, 128, 256, 512, 512 channels); a 2x2 max-pool follows each block.
BLOCKS: tuple[tuple[int, int], ...] = ((64, 2), (128, 2), (256, 4), (512, 4), (512, 4))

#: Every layer name the extractor knows, in network order.
LAYER_NAMES: tuple[str, ...] = tuple(
    f"conv{b + 1}_{i + 1}" for b, (_, n) in enumerate(BLOCKS) for i in range(n)
)

#: Channels of each layer's output.
LAYER_CHANNELS: dict[str, int] = {
    f"conv{b + 1}_{i + 1}": c for b, (c, n) in enumerate(BLOCKS) for i in range(n)
}

#: How many times each layer's input has been halved (max-pooled) relative to the image.
LAYER_DOWNSAMPLING: dict[str, int] = {
    f"conv{b + 1}_{i + 1}": 2 ** b for b, (_, n) in enumerate(BLOCKS) for i in range(n)
}
