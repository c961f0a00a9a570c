"""`cnnkit faces watch SOURCE --gallery G [--liveness]`: who passes in front of the camera, as JSON lines.

Each line on stdout is one event: "identified" (a track got a name, or null for
someone not in the gallery; again if a re-check changes it), "liveness" (with
--liveness: the check decided), "ended" (the track's summary), and last
"summary" (frames read, processed and dropped, frames per second).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from ..common import DEVICE_HELP, positive_float, positive_int
from ..progress import progress_bar

#: --liveness value -> (checks, require)
LIVENESS_CHOICES = {"blink": (("blink",), "any"), "turn": (("turn",), "any"),
                    "either": (("blink", "turn"), "any"), "both": (("blink", "turn"), "all")}


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("watch", help="track and identify faces in a video, image sequence or camera (JSON lines)")
    p.add_argument("source", metavar="SOURCE",
                   help="a video file, a folder of images or a pattern like 'shots/*.jpg', or a camera "
                        "(/dev/video0, camera:0)")
    p.add_argument("--gallery", default=os.environ.get("CNNKIT_GALLERY"),
                   help="gallery file (default $CNNKIT_GALLERY); without one, faces are tracked but not named")
    p.add_argument("--liveness", nargs="?", const="blink", choices=sorted(LIVENESS_CHOICES),
                   help="check each person is live: blink (the default), turn (the head), either, or both")
    p.add_argument("--time-limit", type=positive_float, default=6.0, help="seconds a person has for the liveness check")
    p.add_argument("--annotate", metavar="OUT.mp4", help="also write the video with boxes and names")
    p.add_argument("--realtime", action=argparse.BooleanOptionalAction, default=None,
                   help="keep to the source's clock and drop late frames (default: only for cameras)")
    p.add_argument("--max-lag", type=positive_float, default=0.5, help="real time: drop frames later than this (s)")
    p.add_argument("--recheck", type=positive_float, default=2.0, help="seconds between identifications of a track")
    p.add_argument("--batch-size", type=positive_int, default=4, help="frames per detector batch (default 4)")
    p.add_argument("--fps", type=positive_float, help="frame rate of an image sequence (default 25)")
    p.add_argument("--min-face-size", type=positive_float, default=40.0, help="smallest face to look for, pixels")
    p.add_argument("--device", default="auto", help=DEVICE_HELP)
    p.set_defaults(run=run_watch)


def run_watch(args: argparse.Namespace) -> int:
    import torch

    from ...faces.liveness import LivenessSettings
    from ...faces.video import Watcher, WatchSettings, open_source
    from ...faces.video.annotate import AnnotatedWriter

    liveness = None
    if args.liveness:
        checks, require = LIVENESS_CHOICES[args.liveness]
        liveness = LivenessSettings(checks=checks, require=require, time_limit=args.time_limit)
    settings = WatchSettings(batch_size=args.batch_size, realtime=args.realtime, max_lag=args.max_lag,
                             recheck_every=args.recheck, min_face_size=args.min_face_size, liveness=liveness,
                             device=args.device)
    gallery = None
    if args.gallery:
        from ...faces.gallery import Gallery

        gallery = Gallery(args.gallery, readonly=True, device=args.device)
    writer = None
    try:
        with open_source(args.source, fps=args.fps) as source:
            if args.annotate:
                writer = AnnotatedWriter(args.annotate, fps=source.fps)
            with progress_bar(unit="frame", desc="watch") as bar, torch.inference_mode():
                def on_frame(frame, states):
                    bar.update()
                    if writer is not None:
                        writer.write(frame, states)

                for event in Watcher(gallery, settings).run(source, on_frame=on_frame):
                    sys.stdout.write(json.dumps(event) + "\n")
                    sys.stdout.flush()
    finally:
        if writer is not None:
            writer.close()
            print(f"annotated video: {args.annotate}", file=sys.stderr)  # stdout holds the JSON lines
        if gallery is not None:
            gallery.close()
    return 0
