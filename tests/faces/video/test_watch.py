"""The watcher end to end on a clip made from LFW photos: tracks, names once per track, events, the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cnnkit.cli.main import main
from cnnkit.faces.gallery import Gallery
from cnnkit.faces.video import Watcher, WatchSettings, watch
from cnnkit.faces.video.clips import people_clip, write_clip
from cnnkit.faces.video.sources import ArraySource
from cnnkit.images import load_image
from tests.conftest import lfw_image
from tests.video_support import mesh_weights  # noqa: F401  (fixture)


@pytest.fixture(scope="module")
def two_people(tmp_path_factory, face_weights):
    """A clip: Aaron Eckhart crosses, then Serena Williams, then both side by side; a gallery with Serena only."""
    photos = [load_image(lfw_image("Aaron_Eckhart", 1)), load_image(lfw_image("Serena_Williams", 1))]
    frames, truth = people_clip(photos, frames_each=6, together=4)
    folder = tmp_path_factory.mktemp("watch")
    gallery_path = folder / "g.db"
    with Gallery(gallery_path, create=True, device="cpu") as gallery:
        gallery.enroll("Serena Williams", [lfw_image("Serena_Williams", 2)])
    return frames, truth, gallery_path, folder


def test_each_person_gets_one_track_named_once(two_people):
    frames, truth, gallery_path, _ = two_people
    seen: dict[int, list] = {}  # frame -> [(x centre, track id)], left to right

    def on_frame(frame, states):
        seen[frame.index] = sorted((s.track.face.center[0], s.track.id) for s in states)

    with Gallery(gallery_path, readonly=True, device="cpu") as gallery:
        events = list(Watcher(gallery, WatchSettings(device="cpu", batch_size=4)).run(ArraySource(frames),
                                                                                     on_frame=on_frame))
    ended = [e for e in events if e["event"] == "ended"]
    summary = events[-1]
    assert summary["event"] == "summary" and summary["frames_processed"] == len(frames) == summary["frames_read"]
    # Aaron: frames 0-5, then on the left at the end; Serena: frames 11-16, then on the right.
    assert len(ended) == 2, ended
    names = {e["track"]: e["name"] for e in ended}
    aaron, serena_id = seen[0][0][1], seen[11][0][1]
    assert names == {aaron: None, serena_id: "Serena Williams"}
    assert all([t for _, t in seen[i]] == [aaron] for i in range(6))
    assert all([t for _, t in seen[i]] == [aaron, serena_id] for i in range(len(frames) - 4, len(frames)))
    assert all(len(seen[i]) == len(truth[i]) for i in seen)
    # identified at birth (Aaron, Serena) and when each reappears after a gap: not on every frame
    assert summary["identifications"] == 4 and summary["faces_detected"] == 20
    serena = next(e for e in ended if e["name"])
    with Gallery(gallery_path, readonly=True) as gallery:
        threshold = gallery.operating_point().threshold
    assert serena["best_distance"] < threshold and serena["frames"] >= 9


def test_real_time_mode_drops_frames_it_cannot_keep_up_with(two_people):
    frames, _, _, _ = two_people
    ticks = iter(np.arange(0, 1000, 0.3))  # every look at the clock: 0.3 s more (a slow machine)
    watcher = Watcher(None, WatchSettings(device="cpu", realtime=True, max_lag=0.5, batch_size=2),
                      clock=lambda: float(next(ticks)))
    summary = list(watcher.run(ArraySource(frames)))[-1]
    assert summary["frames_dropped"] > 0
    assert summary["frames_processed"] + summary["frames_dropped"] == summary["frames_read"] == len(frames)


def test_watch_cli_writes_json_lines_and_an_annotated_video(two_people, capsys):
    frames, _, gallery_path, folder = two_people
    clip = write_clip(frames[:11], folder / "aaron.mp4")
    out = folder / "annotated.mp4"
    assert main(["faces", "watch", str(clip), "--gallery", str(gallery_path), "--annotate", str(out),
                 "--device", "cpu"]) == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [e["event"] for e in events] == ["identified", "ended", "summary"]
    with Gallery(gallery_path, readonly=True) as gallery:
        assert events[0]["name"] is None and events[0]["distance"] > gallery.operating_point().threshold
    import av

    with av.open(str(out)) as container:
        assert sum(1 for _ in container.decode(video=0)) == 11


def test_watch_cli_bad_source_is_one_line_and_status_2(capsys, tmp_path):
    assert main(["faces", "watch", str(tmp_path / "nothing.mp4")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no such file" in err[0]


def test_watch_with_liveness_rejects_a_photo(two_people, mesh_weights):
    frames, _, _, _ = two_people
    from cnnkit.faces.liveness import LivenessSettings

    events = watch(ArraySource(frames[:6]), settings=WatchSettings(
        device="cpu", liveness=LivenessSettings(time_limit=0.1, min_frames=2)))
    ended = [e for e in events if e["event"] == "ended"]
    assert len(ended) == 1 and ended[0]["live"] is False
    assert "no blink" in ended[0]["liveness"]["reason"]
