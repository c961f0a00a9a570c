"""`cnnkit ndconv shape`: output shape and parameter count of a 1D/2D/3D convolution."""

from __future__ import annotations

import argparse
import json

from ..common import positive_int


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("shape", help="output shape and parameter count of a 1D/2D/3D convolution",
                       description="Input as the course writes it, channels last: 14 (1D), 14x14x3 (2D, 3 channels), "
                                   "14x14x14x1 (3D, 1 channel). 3 numbers read as 2D + channels unless --dim 3 "
                                   "or a 3-number --kernel says otherwise.")
    p.add_argument("--input", required=True, metavar="SIZES", help="e.g. 14, 14x14x3, 14x14x14x1")
    p.add_argument("--kernel", required=True, metavar="K", help="e.g. 5 or 5x5 or 5x5x5")
    p.add_argument("--filters", type=positive_int, help="number of filters (output channels)")
    p.add_argument("--stride", default="1", metavar="S")
    p.add_argument("--padding", default="0", metavar="P", help="a number per axis, 'valid' or 'same'")
    p.add_argument("--dilation", default="1", metavar="D")
    p.add_argument("--dim", type=int, choices=(1, 2, 3), help="spatial dimensions (default: inferred)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(run=run_shape)


def run_shape(args: argparse.Namespace) -> int:
    from ...ndconv.shapes import conv_shape, parse_sizes, split_channels

    kernel = parse_sizes(args.kernel, "kernel")
    dim = args.dim or (len(kernel) if len(kernel) > 1 else None)
    spatial, channels = split_channels(parse_sizes(args.input, "input"), dim)
    padding = args.padding if args.padding in ("same", "valid") else parse_sizes(args.padding, "padding")
    shape = conv_shape(spatial, kernel, in_channels=channels, filters=args.filters,
                       stride=parse_sizes(args.stride, "stride"), padding=padding,
                       dilation=parse_sizes(args.dilation, "dilation"))
    if args.json:
        print(json.dumps({"dim": shape.dim, "input": list(shape.input_spatial), "in_channels": shape.in_channels,
                          "kernel": list(shape.kernel), "stride": list(shape.stride), "padding": list(shape.padding),
                          "dilation": list(shape.dilation), "filters": shape.filters,
                          "output": list(shape.output_shape), "parameters": shape.parameters,
                          "weights": shape.weights, "biases": shape.biases, "multiply_adds": shape.multiply_adds}))
    else:
        print(shape.describe())
    return 0
