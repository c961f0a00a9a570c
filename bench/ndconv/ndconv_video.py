"""Why time matters: a 3D CNN against 2D networks of about the same size on clips where motion is the label.

The task (cnnkit.ndconv.video.synth): a random smooth texture moves up, down,
left or right; every single frame is a random texture crop, so a network that
looks at frames one at a time ("2d": a 2D ResNet per frame, logits averaged)
can only guess (25 %). The 3D network's kernels span 3 frames; "frames2d"
(frames stacked as channels of a 2D network) is shown too, to be fair: it also
models time, in its first layer. Same clips, epochs, optimiser and schedule for
all three. Test clips (another seed) are written one after another into a real
H.264 video, decoded back with PyAV and classified, clip by clip.

    python -m bench.ndconv.ndconv_video [--epochs 6] [--clips 1200] [--archs 3d,2d,frames2d] [--threads 1]

Writes bench/results/ndconv_video.json (merging architectures run by separate processes) and
docs/ndconv/video_*.png; checkpoints go to --models (outside the repository). `--plot-only` redraws the figure.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from bench.common import RESULTS, ROOT, command, machine, save_result
from cnnkit.ndconv.metrics import accuracy
from cnnkit.ndconv.plots import new_figure, save_confusion, save_figure
from cnnkit.ndconv.video.synth import DIRECTIONS
from cnnkit.ndconv.video.train import (
    VideoSettings,
    evaluate_on_video,
    generate_split,
    predict_clips,
    save_video_model,
    train_video,
)

DOCS = ROOT / "docs" / "ndconv"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--clips", type=int, default=1200, help="training clips")
    parser.add_argument("--test-clips", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the machine is shared)")
    parser.add_argument("--archs", default="3d,2d,frames2d")
    parser.add_argument("--models", type=Path, default=Path("/tmp/ndconv_models"))
    parser.add_argument("--plot-only", action="store_true", help="redraw the figure from the JSON, train nothing")
    parser.add_argument("--out", type=Path, default=RESULTS / "ndconv_video.json")
    args = parser.parse_args()
    load_before = machine()["load_average_1min"]
    if args.plot_only:
        _plot(json.loads(args.out.read_text())["results"], DOCS / "video_3d_vs_2d.png")
        return

    base = VideoSettings()
    test_x, test_y = generate_split("test", args.test_clips, base)
    tmp = Path(tempfile.mkdtemp(prefix="cnnkit-video-"))
    for arch in args.archs.split(","):
        settings = replace(base, arch=arch, train_clips=args.clips,
                           train=replace(base.train, epochs=args.epochs, seed=args.seed, threads=args.threads))
        t0 = time.perf_counter()
        trained = train_video(settings=settings,
                              on_epoch=lambda r, a=arch: print(f"  {a} epoch {r.epoch}: loss {r.train_loss:.3f} "
                                                               f"val acc {r.val_score:.3f} ({r.seconds:.0f} s)",
                                                               flush=True))
        seconds = time.perf_counter() - t0
        save_video_model(args.models / f"video-{arch}.safetensors", trained)
        raw = accuracy(test_y, predict_clips(trained.model, test_x).argmax(1))
        video = evaluate_on_video(trained.model, test_x, test_y, tmp / f"test-{arch}.mp4")
        _, config = settings.model()
        row = {"parameters": trained.parameters, "widths": list(config.widths),
               "train_seconds": round(seconds, 1), "epochs": args.epochs, "train_clips": args.clips,
               "best_epoch": trained.fit.best_epoch, "val_accuracy": trained.val_accuracy,
               "val_history": [h.val_score for h in trained.fit.history], "test_accuracy_raw_clips": raw,
               "test_accuracy_decoded_video": video["accuracy"], "confusion_decoded_video": video["confusion"],
               "video": {k: video[k] for k in ("codec", "bytes", "decode_seconds", "mean_abs_pixel_error")},
               "machine": {**machine(), "load_average_1min_before": load_before}, "command": command()}
        print(f"{arch:9} params {trained.parameters:6d}  val {trained.val_accuracy:.3f}  test (raw) {raw:.3f}  "
              f"test (decoded H.264) {video['accuracy']:.3f}  train {seconds:.0f} s", flush=True)
        save_confusion(DOCS / f"video_confusion_{arch}.png", np.array(video["confusion"]), DIRECTIONS,
                       title=f"{arch}: test clips decoded from H.264")
        # architectures may be run by separate processes: merge into what the file already holds
        rows = json.loads(args.out.read_text())["results"] if args.out.is_file() else {}
        rows[arch] = row
        save_result("ndconv_video", {"task": "texture moving up/down/left/right, 16 frames of 32x32, chance 0.25",
                                     "val_clips": base.val_clips, "test_clips": args.test_clips, "results": rows},
                    out=args.out)
        _plot(rows, DOCS / "video_3d_vs_2d.png")
    _frames(test_x, test_y, DOCS / "video_task.png")
    print(f"wrote {args.out}")


COLOURS = {"3d": "#1c7ed6", "2d": "#adb5bd", "frames2d": "#74c0fc"}


def _plot(rows: dict, path: Path) -> None:
    rows = {a: rows[a] for a in COLOURS if a in rows}
    fig = new_figure(7.5, 3.0)
    ax = fig.add_subplot(1, 2, 1)
    for arch, row in rows.items():
        h = row["val_history"]
        ax.plot(range(1, len(h) + 1), h, marker="o", ms=3, color=COLOURS[arch],
                label=f"{arch} ({row['parameters'] // 1000}k params)")
    ax.axhline(0.25, color="0.6", ls="--", lw=0.8, label="chance")
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation accuracy")
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize=7)
    ax = fig.add_subplot(1, 2, 2)
    names = list(rows)
    ax.bar(names, [rows[a]["test_accuracy_decoded_video"] for a in names], color=[COLOURS[a] for a in names])
    for i, a in enumerate(names):
        ax.text(i, rows[a]["test_accuracy_decoded_video"] + 0.02, f"{rows[a]['test_accuracy_decoded_video']:.2f}",
                ha="center", fontsize=8)
    ax.axhline(0.25, color="0.6", ls="--", lw=0.8)
    ax.set_ylim(0, 1.1)
    ax.set_ylabel("test accuracy (decoded H.264)")
    budget = ", ".join(f"{a}: {r['epochs']} epochs x {r['train_clips']} clips" for a, r in rows.items())
    fig.suptitle(f"direction of motion ({budget})", fontsize=8)
    save_figure(fig, path)


def _frames(clips: np.ndarray, labels: np.ndarray, path: Path) -> None:
    fig = new_figure(7.5, 2.4)
    picks = [int(np.flatnonzero(labels == k)[0]) for k in range(len(DIRECTIONS))]
    for r, i in enumerate(picks):
        for j, t in enumerate((0, 5, 10, 15)):
            ax = fig.add_subplot(len(picks), 4, r * 4 + j + 1)
            ax.imshow(clips[i, t], cmap="gray", vmin=0, vmax=255)
            ax.set_xticks([])
            ax.set_yticks([])
            if j == 0:
                ax.set_ylabel(DIRECTIONS[labels[i]], fontsize=7, rotation=0, ha="right", va="center")
            if r == 0:
                ax.set_title(f"frame {t}", fontsize=7)
    save_figure(fig, path)


if __name__ == "__main__":
    main()
