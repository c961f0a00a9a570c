"""`cnnkit ndconv video generate|train|predict`: a 3D CNN on video clips (the motion task)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..common import DEVICE_HELP, positive_int
from .common import (
    add_model_option,
    add_train_options,
    epoch_bar,
    model_path,
    out_path,
    task_settings,
)


def add_parser(sub: argparse._SubParsersAction) -> None:
    vid = sub.add_parser("video", help="3D CNN on clips (frames x height x width); PyAV decoding")
    act = vid.add_subparsers(dest="video_command", metavar="ACTION", required=True)

    g = act.add_parser("generate", help="write clips of the motion task (texture moving up/down/left/right) to a video")
    g.add_argument("out", metavar="OUT.mp4", help="the video file to write")
    g.add_argument("--clips", type=positive_int, default=8, help="clips in the video (default 8)")
    g.add_argument("--seed", type=int, default=2, help="seed of the textures and directions (default 2)")
    g.add_argument("--codec", choices=("libx264", "mpeg4", "ffv1"), default="libx264")
    g.set_defaults(run=run_video_generate)

    t = act.add_parser("train", help="train a clip classifier on the generated motion task")
    t.add_argument("--arch", choices=("3d", "2d", "frames2d"), default="3d",
                   help="3d (default), 2d (per frame, averaged) or frames2d (frames as channels)")
    t.add_argument("--clips", type=positive_int, default=1600, help="training clips (default 1600)")
    t.add_argument("--out", help="checkpoint (default $CNNKIT_HOME/ndconv/video-ARCH.safetensors)")
    add_train_options(t, epochs=8, batch=32, lr=3e-3)
    t.set_defaults(run=run_video_train)

    p = act.add_parser("predict", help="decode a video into clips and classify each clip's motion")
    p.add_argument("video", metavar="VIDEO")
    add_model_option(p, "video-3d.safetensors")
    p.add_argument("--stride", type=positive_int, help="frames between clip starts (default: the clip length)")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.add_argument("--device", default="auto", help=DEVICE_HELP)
    p.set_defaults(run=run_video_predict)


def run_video_generate(args: argparse.Namespace) -> int:
    from ...ndconv.video.io import write_video
    from ...ndconv.video.synth import DIRECTIONS, make_clips

    clips, labels = make_clips(args.clips, seed=args.seed)
    out = write_video(args.out, clips.reshape(-1, *clips.shape[2:]), codec=args.codec)
    frames = clips.shape[1]
    truth = [{"start_frame": i * frames, "label": DIRECTIONS[k]} for i, k in enumerate(labels)]
    Path(str(out) + ".json").write_text(json.dumps({"clip_frames": frames, "clips": truth}, indent=1) + "\n")
    print(f"{out}: {len(labels)} clips of {frames} frames ({', '.join(DIRECTIONS[k] for k in labels)}); "
          f"labels in {out}.json")
    return 0


def run_video_train(args: argparse.Namespace) -> int:
    from ...ndconv.video.train import VideoSettings, save_video_model, train_video

    settings = task_settings(args, VideoSettings(), arch=args.arch, train_clips=args.clips)
    bar, on_epoch = epoch_bar(args.epochs, f"train {args.arch}")
    with bar:
        trained = train_video(settings=settings, on_epoch=on_epoch)
    out = save_video_model(out_path(args.out, f"video-{args.arch}.safetensors"), trained)
    print(f"{out}  ({trained.parameters} parameters; best epoch {trained.fit.best_epoch}: "
          f"val accuracy {trained.val_accuracy:.3f}; {trained.fit.seconds:.0f} s)")
    return 0


def run_video_predict(args: argparse.Namespace) -> int:
    from ...ndconv.video.train import predict_video

    preds = predict_video(model_path(args.model, "video-3d.safetensors"), args.video, stride=args.stride,
                          device=args.device)
    if args.json:
        print(json.dumps([{"start_frame": p.start_frame, "frames": p.frames, "label": p.label,
                           "probabilities": p.probabilities}
                          for p in preds]))
    else:
        for p in preds:
            print(f"frames {p.start_frame:5d}-{p.start_frame + p.frames - 1:5d}: {p.label:5} "
                  f"(p={max(p.probabilities):.2f})")
    return 0
