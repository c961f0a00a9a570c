"""Faces on video end to end at 640x480 on CPU: frames per second, and whether tracking keeps one id per person.

The clip is made reproducibly from LFW photos (cnnkit/faces/video/clips.py) and
encoded to H.264 with PyAV: four people of LFW View 1's test pairs cross the
frame one after another (a short empty gap between them), then the first two
stand side by side. Three are enrolled in a temporary gallery from a *different*
photo of each; the fourth is a stranger. The watcher decodes the file with PyAV.

Measured: frames per second end to end (decode, detect, track, identify; with
and without the blink liveness check), against identifying every face on every
frame (the same pipeline without tracking's savings) as the peer; in real-time
mode, how many frames were dropped to keep up; and per appearance of a person,
how many track ids it got (1 is right), whether any id covered two people, and
whether the name was right.

    python -m bench.faces.video_tracking [--people 4] [--frames-each 40]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

import torch

from bench.common import LFW, RESULTS, save_result
from bench.faces.video_liveness import people
from cnnkit.faces.gallery import Gallery
from cnnkit.faces.liveness import LivenessSettings
from cnnkit.faces.video import Watcher, WatchSettings, clips, open_source
from cnnkit.images import load_image


def run(path: Path, gallery: Gallery, settings: WatchSettings) -> tuple[list[dict], dict[int, list], float]:
    seen: dict[int, list] = {}

    def on_frame(frame, states):
        seen[frame.index] = [(st.track.id, st.track.face.center[0], st.name) for st in states]

    started = time.perf_counter()
    with open_source(path) as source, torch.inference_mode():
        events = list(Watcher(gallery, settings).run(source, on_frame=on_frame))
    return events, seen, time.perf_counter() - started


def consistency(seen: dict[int, list], truth: list[list[int]], names: list[str], enrolled: set[str]) -> dict:
    """Per appearance (a run of frames in which one person is in view): ids given, purity, names."""
    segments: list[tuple[int, list[int]]] = []  # (person, frames)
    current: dict[int, list[int]] = {}
    for index, who in enumerate(truth):
        for person in list(current):
            if person not in who:
                segments.append((person, current.pop(person)))
        for person in who:
            current.setdefault(person, []).append(index)
    segments.extend(current.items())
    id_people: dict[int, set[int]] = defaultdict(set)
    rows = []
    for person, frames in segments:
        ids: Counter = Counter()
        named: Counter = Counter()
        missed = 0
        for index in frames:
            faces = seen.get(index, [])
            if not faces:
                missed += 1
                continue
            if len(truth[index]) == 1:
                track_id, _, name = faces[0]
            else:  # two people side by side: person 0 of the pair stands on the left
                ordered = sorted(faces, key=lambda f: f[1])
                pos = sorted(truth[index]).index(person)
                if pos >= len(ordered):
                    missed += 1
                    continue
                track_id, _, name = ordered[pos]
            ids[track_id] += 1
            named[name] += 1
            id_people[track_id].add(person)
        expected = names[person] if names[person] in enrolled else None
        rows.append({"person": names[person], "enrolled": names[person] in enrolled, "frames": len(frames),
                     "frames_without_face": missed, "track_ids": dict(ids), "ids": len(ids),
                     "name_right_frames": named.get(expected, 0), "names_seen": {str(k): v for k, v in named.items()}})
    return {"appearances": rows,
            "appearances_with_one_id": sum(r["ids"] == 1 for r in rows),
            "id_switches": sum(max(0, r["ids"] - 1) for r in rows),
            "ids_covering_two_people": sum(len(p) > 1 for p in id_people.values()),
            "frames_named_right": sum(r["name_right_frames"] for r in rows),
            "frames_with_face": sum(r["frames"] - r["frames_without_face"] for r in rows)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--people", type=int, default=4)
    parser.add_argument("--frames-each", type=int, default=40)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the machine is shared)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default=str(RESULTS / "video_tracking.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    names = people(LFW / "pairsDevTest.txt", args.people)
    photos = [load_image(LFW / "images" / n / f"{n}_0001.jpg") for n in names]
    frames, truth = clips.people_clip(photos, frames_each=args.frames_each, together=args.frames_each)
    enrolled = set(names[:-1])
    report: dict = {"benchmark": "video_tracking", "people": names, "enrolled": sorted(enrolled),
                    "stranger": names[-1], "frames": len(frames), "size": [640, 480], "source_fps": 25,
                    "device": args.device}
    with tempfile.TemporaryDirectory() as tmp:
        video = clips.write_clip(frames, Path(tmp) / "people.mp4")
        report["clip_bytes"] = video.stat().st_size
        with Gallery(Path(tmp) / "g.db", create=True, device=args.device) as gallery:
            for n in sorted(enrolled):
                gallery.enroll(n, [LFW / "images" / n / f"{n}_0002.jpg"], pick="largest")
            base = WatchSettings(device=args.device)
            runs = {
                "tracked": base,
                "tracked_with_liveness": WatchSettings(device=args.device, liveness=LivenessSettings()),
                "identify_every_frame": WatchSettings(device=args.device, recheck_every=1e-6),
                "tracked_realtime": WatchSettings(device=args.device, realtime=True),
            }
            for key, settings in runs.items():
                events, seen, seconds = run(video, gallery, settings)
                summary = events[-1]
                row = {"seconds": round(seconds, 2), "fps_end_to_end": round(summary["frames_read"] / seconds, 2),
                       **{k: summary[k] for k in ("frames_read", "frames_processed", "frames_dropped",
                                                  "identifications", "tracks")}}
                if key != "tracked_realtime":
                    row["tracking"] = consistency(seen, truth, names, enrolled)
                row["ended_events"] = [{k: e.get(k) for k in ("track", "name", "first_seen", "last_seen", "frames",
                                                              "best_distance", "checks", "live")}
                                       for e in events if e["event"] == "ended"]
                report[key] = row
                print(key, json.dumps({k: v for k, v in row.items() if k not in ("tracking", "ended_events")}),
                      flush=True)
    report["speedup_tracked_vs_identify_every_frame"] = round(
        report["tracked"]["fps_end_to_end"] / report["identify_every_frame"]["fps_end_to_end"], 3)
    out = save_result("video_tracking", report, out=args.out)
    t = report["tracked"]["tracking"]
    print(f"appearances with one id: {t['appearances_with_one_id']}/{len(t['appearances'])}, id switches "
          f"{t['id_switches']}, ids covering two people {t['ids_covering_two_people']}, frames named right "
          f"{t['frames_named_right']}/{t['frames_with_face']}")
    print(f"saved {out}")


if __name__ == "__main__":
    main()
