"""What the `cnnkit ndconv` tasks share: data and checkpoint locations, training options, epoch bars."""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...errors import CnnkitError
from ..common import DEVICE_HELP, positive_float, positive_int


@dataclass(frozen=True)
class Task:
    """A task's data (--data, else $`env`, else the first of `candidates` that exists) and its checkpoint."""

    env: str
    candidates: tuple[str, ...]
    what: str  # for the error: "MIT-BIH data not found"
    flag: str  # for the error: "pass --data DIR"
    data_help: str  # of --data
    checkpoint: str  # the checkpoint's file name in $CNNKIT_HOME/ndconv

    def add_data_option(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--data", help=self.data_help)

    def find_data(self, given: str | None) -> Path:
        options = [given] if given else [os.environ.get(self.env), *self.candidates]
        for c in options:
            if c and Path(c).exists():
                return Path(c)
        raise CnnkitError(f"{self.what} not found{f' at {given}' if given else ''}; pass {self.flag} or set {self.env}")

    def add_model_option(self, parser: argparse.ArgumentParser) -> None:
        add_model_option(parser, self.checkpoint)

    def model_path(self, given: str | None) -> Path:
        return model_path(given, self.checkpoint)

    def out_path(self, given: str | None) -> Path:
        return out_path(given, self.checkpoint)

    def add_train_parser(self, actions: argparse._SubParsersAction, help: str, *,
                         out_help: str) -> argparse.ArgumentParser:
        """The `train` action: --data and --out; the task's own options come next, then `add_train_options`."""
        parser = actions.add_parser("train", help=help)
        self.add_data_option(parser)
        parser.add_argument("--out", help=out_help)
        return parser


def models_dir() -> Path:
    from ...weights.store import cnnkit_home

    return cnnkit_home() / "ndconv"


#: The checkpoints cnnkit ships (made by this repo's default training commands; see the README beside them).
PRETRAINED = Path(__file__).resolve().parents[2] / "ndconv" / "pretrained"


def model_path(given: str | None, name: str) -> Path:
    """The checkpoint given, else one trained into $CNNKIT_HOME/ndconv/`name`, else the one cnnkit ships."""
    if given:
        return Path(given)
    trained = models_dir() / name
    return trained if trained.exists() or not (PRETRAINED / name).exists() else PRETRAINED / name


def out_path(given: str | None, name: str) -> Path:
    """Where `train` writes: the path given, else $CNNKIT_HOME/ndconv/`name` (never over a shipped model)."""
    return Path(given) if given else models_dir() / name


def add_model_option(parser: argparse.ArgumentParser, name: str) -> None:
    """--model, the checkpoint to load (default: one trained into $CNNKIT_HOME/ndconv/`name`, else the shipped one)."""
    parser.add_argument("--model", help=f"checkpoint (default $CNNKIT_HOME/ndconv/{name} if you trained one, "
                        "else the one cnnkit ships)")


def add_train_options(p: argparse.ArgumentParser, *, epochs: int, batch: int, lr: float) -> None:
    """The training loop's options (read back by `task_settings`), after the task's own."""
    p.add_argument("--epochs", type=positive_int, default=epochs, help=f"default {epochs}")
    p.add_argument("--batch-size", type=positive_int, default=batch, help=f"default {batch}")
    p.add_argument("--lr", type=positive_float, default=lr, help=f"peak learning rate (AdamW, cosine; default {lr:g})")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help=DEVICE_HELP)
    p.add_argument("--threads", type=positive_int, help="CPU threads for PyTorch (default: PyTorch's choice)")


def task_settings(args: argparse.Namespace, base: Any, **changes: Any) -> Any:
    """`base` (a task's settings) with `changes` and the training options of `add_train_options`."""
    from dataclasses import replace

    train = replace(base.train, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                    device=args.device, threads=args.threads)
    return replace(base, **changes, train=train)


def epoch_bar(total: int, desc: str):
    """A progress bar of epochs and the `on_epoch` callback that advances it (loss, validation score)."""
    from ..progress import progress_bar

    bar = progress_bar(total=total, desc=desc, unit="epoch")

    def on_epoch(report) -> None:
        post = {"loss": f"{report.train_loss:.3f}"}
        if report.val_score is not None:
            post["val"] = f"{report.val_score:.3f}"
        bar.set_postfix(post)
        bar.update()
    return bar, on_epoch


def write_json(path: str | None, data: dict) -> None:
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(data, indent=1) + "\n")
