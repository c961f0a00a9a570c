"""`cnnkit style CONTENT STYLE [STYLE ...] -o OUT.png`: neural style transfer."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from ..errors import SettingsError
from ..style.settings import (
    DEFAULT_CONTENT_LAYER,
    INIT_CHOICES,
    OPTIMIZER_CHOICES,
    PRESERVE_COLOR_CHOICES,
    StyleSettings,
    parse_layer_weights,
)
from .common import DEVICE_HELP, argument_type, nonnegative_float, positive_float, positive_int
from .progress import progress_bar


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "style", help="paint a photo in the style of one or more paintings (Gatys et al.)",
        description="Neural style transfer: optimise the pixels of OUT so that its VGG19 features match "
                    "CONTENT (at --content-layer) and the Gram matrices match the STYLE images.")
    parser.add_argument("content", metavar="CONTENT", help="the photo (any format load_image reads)")
    parser.add_argument("styles", nargs="+", metavar="STYLE", help="style image(s); several are blended")
    parser.add_argument("-o", "--output", required=True, metavar="OUT.png",
                        help="output image (PNG, JPEG, ... by its name; folders are made); "
                             "the cost log goes to OUT.json")
    add_options(parser)
    parser.set_defaults(run=run_style)


def add_options(parser: argparse.ArgumentParser) -> None:
    d = StyleSettings()
    parser.add_argument("--size", type=positive_int, default=d.size,
                        help=f"long edge of the output, px (default {d.size})")
    parser.add_argument("--steps", type=positive_int, default=d.steps,
                        help=f"optimizer steps at the final size (default {d.steps})")
    parser.add_argument("--content-weight", type=nonnegative_float, default=d.content_weight, metavar="ALPHA",
                        help=f"alpha, weight of the content cost (default {d.content_weight:g})")
    parser.add_argument("--style-weight", type=nonnegative_float, default=d.style_weight, metavar="BETA",
                        help=f"beta, weight of the style cost (default {d.style_weight:g})")
    parser.add_argument("--style-layer-weights", type=argument_type(parse_layer_weights), metavar="LAYER=W,...",
                        help="lambda per style layer, e.g. conv1_1=0.2,conv2_1=0.2,conv3_1=0.2,conv4_1=0.2,conv5_1=0.2 "
                             "(default: conv1_1..conv5_1 weighted 1/n_C^2, summing to 1)")
    parser.add_argument("--content-layer", default=DEFAULT_CONTENT_LAYER,
                        help=f"VGG19 layer of the content cost (default {DEFAULT_CONTENT_LAYER})")
    parser.add_argument("--tv-weight", type=nonnegative_float, default=d.tv_weight,
                        help="weight of the total-variation cost (default 0: off)")
    parser.add_argument("--init", choices=INIT_CHOICES, default=d.init, help=f"starting image (default {d.init})")
    parser.add_argument("--optimizer", choices=OPTIMIZER_CHOICES, default=d.optimizer,
                        help=f"default {d.optimizer}")
    parser.add_argument("--lr", type=positive_float, dest="learning_rate",
                        help="step size (default 1 for lbfgs, 0.02 for adam: pixels are 0-1)")
    parser.add_argument("--style-blend", type=nonnegative_float, nargs="+", metavar="W",
                        help="one weight per STYLE image (default: equal)")
    parser.add_argument("--preserve-color", nargs="?", const="luminance", choices=PRESERVE_COLOR_CHOICES,
                        help="keep the content's colours: 'luminance' (transfer on luma only; the default "
                             "when the flag is given) or 'match' (recolour the styles); write --preserve-color=match")
    parser.add_argument("--style-scale", type=positive_float, default=d.style_scale,
                        help="size of the style images relative to the output (default 1: same pixel count)")
    parser.add_argument("--multiscale", type=positive_int, default=d.multiscale, metavar="PASSES",
                        help="coarse-to-fine passes, each twice the size of the one before (default 1)")
    parser.add_argument("--coarse-steps", type=positive_int, metavar="N",
                        help="steps of each pass before the last (default: --steps)")
    parser.add_argument("--device", default=d.device, help=DEVICE_HELP)
    parser.add_argument("--seed", type=int, default=d.seed, help=f"seed of the noise init (default {d.seed})")
    parser.add_argument("--max-memory", type=_parse_bytes, metavar="SIZE",
                        help="refuse outputs that need more than this, e.g. 8G (default: the memory available)")
    parser.add_argument("--save-every", type=positive_int, metavar="N",
                        help="also save the image every N steps, as OUT-stepNNNN.png")
    parser.add_argument("--plot", nargs="?", const="", metavar="PNG",
                        help="draw the cost curves (default file: OUT-costs.png)")


def settings_from_args(args: argparse.Namespace) -> dict[str, object]:
    """The stylize keywords given by the options (unset optional ones left to the defaults)."""
    names = ("size", "steps", "content_weight", "style_weight", "style_layer_weights", "content_layer",
             "tv_weight", "init", "optimizer", "learning_rate", "style_blend", "preserve_color", "style_scale",
             "multiscale", "coarse_steps", "device", "seed", "max_memory")
    return {name: getattr(args, name) for name in names}


def run_style(args: argparse.Namespace) -> int:
    from PIL import Image

    from ..images import load_image
    from ..style.plot import save_cost_plot
    from ..style.settings import make_settings
    from ..style.transfer import Step, style_transfer

    output = Path(args.output)
    if output.suffix.lower() not in Image.registered_extensions():
        raise SettingsError(f"{output}: give the output a name PIL can write, e.g. OUT.png or OUT.jpg")
    if args.save_every is not None and args.save_every < 1:
        raise SettingsError(f"--save-every must be >= 1; got {args.save_every}")
    output.parent.mkdir(parents=True, exist_ok=True)
    settings = settings_from_args(args)
    check = make_settings(**settings)  # bad values fail before any image is read
    total_steps = check.steps + 1 + (check.multiscale - 1) * (
        (check.coarse_steps if check.coarse_steps is not None else check.steps) + 1)

    # Read the inputs once here so that unreadable files fail before the progress bar appears.
    content = load_image(args.content)
    styles = [load_image(path) for path in args.styles]

    with progress_bar(total=total_steps, desc="style", unit="step") as bar:
        def on_step(step: Step) -> None:
            bar.update()
            bar.set_postfix_str(f"{step.size[1]}x{step.size[0]} content {step.costs.content:.4g} "
                                f"style {step.costs.style:.4g} total {step.costs.total:.4g}", refresh=False)
            if args.save_every and step.step % args.save_every == 0:
                _save_image(step.image(), output.with_name(f"{output.stem}-step{step.step:04d}{output.suffix}"))

        result = style_transfer(content, styles, callback=on_step, **settings)

    _save_image(result.image, output)
    log = result.to_log()
    log["inputs"] = {"content": str(args.content), "styles": [str(p) for p in args.styles], "output": str(output)}
    log_path = output.with_suffix(".json")
    log_path.write_text(json.dumps(log, indent=1) + "\n")
    lines = [f"{output}: {result.image.shape[1]}x{result.image.shape[0]} in {result.seconds:.1f} s",
             (f"  content {result.costs.content:.6g}  style {result.costs.style:.6g}  "
              f"total {result.costs.total:.6g}"), f"  cost log: {log_path}"]
    if args.plot is not None:
        plot_path = Path(args.plot) if args.plot else output.with_name(f"{output.stem}-costs.png")
        save_cost_plot(log, plot_path, title=f"{Path(args.content).name} in the style of "
                                             f"{', '.join(Path(p).name for p in args.styles)}")
        lines.append(f"  cost plot: {plot_path}")
    print("\n".join(lines))
    return 0


def _save_image(image, path: Path) -> None:
    """Write `image` in the format its name says (written beside it first, then renamed)."""
    from PIL import Image

    tmp = path.with_name(f".{path.name}.tmp")
    Image.fromarray(image).save(tmp, format=Image.registered_extensions()[path.suffix.lower()])
    tmp.replace(path)


_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def _parse_bytes(text: str) -> int:
    match = re.fullmatch(r"\s*([0-9.]+)\s*([kmgt]?)(i?b)?\s*", text.lower())
    if not match:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size like 512M or 8G")
    return int(float(match.group(1)) * _UNITS[match.group(2)])

