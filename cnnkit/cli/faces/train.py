"""`cnnkit faces train`: train or fine-tune a face encoder (triplet, contrastive or binary loss)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ...errors import CnnkitError, SettingsError
from ..common import DEVICE_HELP, positive_float, positive_int
from ..progress import progress_bar

if TYPE_CHECKING:
    from tqdm import tqdm


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train or fine-tune an encoder on an identity folder (DIR/<person>/<images>)")
    p.add_argument("--data", required=True, help="folder with one sub-folder of images per person")
    p.add_argument("--encoder", default="small-resnet",
                   help="small-resnet (from scratch), dlib-resnet-v1 (fine-tune) or a saved encoder's folder")
    p.add_argument("--out", required=True, metavar="MODEL", help="folder to save the model (and checkpoints) in")
    p.add_argument("--loss", choices=["triplet", "contrastive", "binary"], default="triplet")
    p.add_argument("--miner", choices=["semihard", "batch-hard", "random", "all"],
                   help="triplets for the loss (default: semihard for the triplet loss; all pairs for the others)")
    p.add_argument("--distance", choices=["squared-l2", "l2", "cosine"], default="squared-l2",
                   help="distance of the triplet/contrastive loss (default squared-l2, as FaceNet)")
    p.add_argument("--margin", type=positive_float, default=0.2, help="triplet margin alpha (default 0.2)")
    p.add_argument("--head-features", choices=["abs", "chi2"], default="abs", help="binary loss: pair features")
    p.add_argument("--embedding-dim", type=positive_int, default=128)
    p.add_argument("--epochs", type=positive_int, default=10)
    p.add_argument("--batch-p", type=positive_int, default=16, help="people per batch (default 16)")
    p.add_argument("--batch-k", type=positive_int, default=4, help="images per person in a batch (default 4)")
    p.add_argument("--batches-per-epoch", type=positive_int, help="default: one pass over the people")
    p.add_argument("--lr", type=positive_float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-augment", dest="augment", action="store_false", help="no flip / crop / colour jitter")
    p.add_argument("--freeze-encoder", action="store_true",
                   help="dlib-resnet-v1: train a projection (or, with --loss binary, only the head) on its "
                        "precomputed embeddings")
    p.add_argument("--chip-size", type=positive_int, help="small-resnet input size in pixels (default 96)")
    p.add_argument("--width", type=positive_int, default=32,
                   help="small-resnet: channels of the first stage (default 32)")
    p.add_argument("--blocks", default="2,2,2,2", help="small-resnet: residual blocks per stage (default 2,2,2,2)")
    p.add_argument("--people", help="train only on the people listed in this file (LFW people*.txt format)")
    p.add_argument("--val-pairs", help="pairs file (LFW format) to validate on after every epoch")
    p.add_argument("--val-images", help="images folder of --val-pairs (default: --data)")
    p.add_argument("--cache", help="where aligned chips are cached (default: the cnnkit cache folder)")
    p.add_argument("--resume", action="store_true", help="go on from MODEL/checkpoint")
    p.add_argument("--device", default="auto", help=DEVICE_HELP)
    p.add_argument("--json", dest="json_out", metavar="OUT", help="save the training report as JSON")
    p.set_defaults(run=run_train)


def read_people(path: str) -> list[str]:
    """Names from an LFW people file (`name count` rows; fold headers are skipped) or one name a line."""
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as exc:
        raise CnnkitError(f"{path}: cannot read people file ({exc.strerror})") from None
    names = [ln.split()[0] for ln in lines if ln.strip() and not ln.split()[0].isdigit()]
    if not names:
        raise CnnkitError(f"{path}: no names in people file")
    return names


def run_train(args: argparse.Namespace) -> int:
    from ...faces.train.loop import TrainSettings
    from ...faces.train.runner import fit

    try:
        blocks = [int(b) for b in args.blocks.split(",")]
    except ValueError:
        raise SettingsError(f"--blocks must be comma-separated integers such as 2,2,2,2, got {args.blocks!r}") from None
    miner = args.miner or ("semihard" if args.loss == "triplet" else "all")
    settings = TrainSettings(loss=args.loss, miner=miner, margin=args.margin, distance=args.distance,
                             epochs=args.epochs, batch_p=args.batch_p, batch_k=args.batch_k,
                             batches_per_epoch=args.batches_per_epoch, lr=args.lr, head_features=args.head_features,
                             augment=args.augment, seed=args.seed)
    bars: dict[str, tqdm] = {}

    def on_progress(stage: str, done: int, total: int) -> None:
        bar = bars.get(stage)
        if bar is None:
            bar = bars[stage] = progress_bar(total=total, desc=stage, unit="img")
        bar.n = done
        bar.refresh()
        if done >= total:
            bar.close()

    train_bar = None

    def on_step(record) -> None:
        nonlocal train_bar
        if train_bar is None:
            train_bar = progress_bar(desc="train", unit="step")
        train_bar.set_postfix(epoch=record.epoch, loss=f"{record.loss:.4f}",
                              active=f"{record.active_fraction:.3f}", refresh=False)
        train_bar.update()

    def on_epoch(epoch) -> None:
        val = epoch.validation
        text = (f" val acc {100 * val['accuracy']:.2f}% auc {val['auc']:.4f} threshold {val['threshold']:.4f}"
                if val else "")
        message = (f"epoch {epoch.epoch}: loss {epoch.loss:.4f} active triplets {epoch.active_fraction:.3f} "
                   f"{epoch.images_per_second:.1f} img/s{text}")
        (train_bar.write if train_bar is not None else print)(message, file=sys.stderr)

    report = fit(args.data, encoder=args.encoder, out=args.out, settings=settings, embedding_dim=args.embedding_dim,
                 freeze_encoder=args.freeze_encoder, people=read_people(args.people) if args.people else None,
                 val_pairs=args.val_pairs, val_images=args.val_images, chip_size=args.chip_size,
                 small={"width": args.width, "blocks": blocks}, cache_dir=args.cache, device=args.device,
                 resume=args.resume, on_progress=on_progress, on_step=on_step, on_epoch=on_epoch)
    if train_bar is not None:
        train_bar.close()
    print(f"trained {report.architecture} ({report.trainable_parameters:,} trainable of {report.parameters:,} "
          f"parameters) on {report.images} images of {report.people} people "
          f"({report.skipped_people} people skipped: fewer than 2 usable images; "
          f"{report.skipped_images} unreadable images skipped)")
    print(f"{report.result.images_per_second:.1f} training images/s; saved to {report.out}"
          + (" (encoder" + (" + binary head)" if report.saved_head else ")") if report.saved_encoder
             else " (binary head for dlib-resnet-v1)"))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(report.to_dict(), indent=2) + "\n")
    return 0
