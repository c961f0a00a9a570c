"""Frame sources: PyAV round trip of an encoded clip, image sequences, clear errors."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from cnnkit.errors import CnnkitError
from cnnkit.faces.video import VideoSourceError, open_source
from cnnkit.faces.video.clips import moving_clip, people_clip, still_clip, write_clip
from cnnkit.images import load_image
from tests.conftest import lfw_image


def test_an_encoded_clip_reads_back_with_its_size_rate_and_times(tmp_path):
    photo = load_image(lfw_image("Aaron_Eckhart", 1))
    frames = moving_clip(photo, frames=12, seed=3)
    path = write_clip(frames, tmp_path / "clip.mp4", fps=25, crf=10)
    with open_source(path) as source:
        assert source.size == (640, 480) and source.fps == pytest.approx(25)
        got = list(source)
    assert [f.index for f in got] == list(range(12))
    np.testing.assert_allclose([f.time for f in got], np.arange(12) / 25, atol=1e-6)
    assert got[5].image.shape == (480, 640, 3) and got[5].image.dtype == np.uint8
    # H.264 at crf 10 is close to the frames it was given, and the frames differ from each other
    assert np.abs(got[5].image.astype(int) - frames[5]).mean() < 4
    assert np.abs(got[5].image.astype(int) - got[0].image).mean() > 10


def test_clips_are_reproducible():
    photo = load_image(lfw_image("Aaron_Eckhart", 1))
    assert all(np.array_equal(a, b) for a, b in zip(moving_clip(photo, frames=5), moving_clip(photo, frames=5)))
    still = still_clip(photo, frames=3)
    assert np.array_equal(still[0], still[2])
    frames, truth = people_clip([photo, photo[:, ::-1].copy()], frames_each=4, together=3)
    assert len(frames) == len(truth) == 2 * (4 + 5) + 3 and truth[-1] == [0, 1] and truth[4] == []


def test_a_folder_and_a_glob_pattern_play_as_a_sequence(tmp_path):
    for i in range(3):
        Image.new("RGB", (32, 24), (i * 80, 0, 0)).save(tmp_path / f"f{i:02d}.png")
    (tmp_path / "notes.txt").write_text("not a frame")
    folder = list(open_source(tmp_path, fps=10))
    assert [f.time for f in folder] == [0.0, 0.1, 0.2]
    assert [int(f.image[0, 0, 0]) for f in folder] == [0, 80, 160]
    assert len(list(open_source(str(tmp_path / "f0*.png")))) == 3


@pytest.mark.parametrize("source, message", [
    ("missing.mp4", "no such file, folder or camera"),
    ("/dev/video99", "cannot open this camera"),
])
def test_bad_sources_say_what_to_do(tmp_path, source, message):
    with pytest.raises(VideoSourceError, match=message):
        open_source(tmp_path / source if not source.startswith("/") else source)


def test_a_file_that_is_not_a_video_and_an_empty_folder(tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"this is not a video")
    with pytest.raises(CnnkitError, match="cannot open this video"):
        open_source(bad)
    (tmp_path / "empty").mkdir()
    with pytest.raises(CnnkitError, match="no images found"):
        open_source(tmp_path / "empty")
