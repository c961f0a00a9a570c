"""Video: the generated motion task, PyAV writing and decoding, bad files, a short training run and the CLI."""

from __future__ import annotations

import numpy as np
import pytest

from cnnkit.errors import VideoError
from cnnkit.ndconv.video.io import read_clips, read_frames, to_clips, write_video
from cnnkit.ndconv.video.synth import DIRECTIONS, make_clips, moving_clip


def test_task_is_reproducible_and_balanced():
    a, ya = make_clips(8, seed=3, frames=6, size=16)
    b, yb = make_clips(8, seed=3, frames=6, size=16)
    assert np.array_equal(a, b) and np.array_equal(ya, yb)
    assert a.shape == (8, 6, 16, 16) and a.dtype == np.uint8
    assert np.bincount(ya, minlength=4).tolist() == [2, 2, 2, 2]
    assert not np.array_equal(make_clips(8, seed=4, frames=6, size=16)[0], a)


@pytest.mark.parametrize("direction,axis,sign", [("right", 1, 1), ("left", 1, -1), ("down", 0, 1), ("up", 0, -1)])
def test_the_texture_moves_the_way_the_label_says(direction, axis, sign):
    clip = moving_clip(np.random.default_rng(0), direction, frames=4, size=32).astype(np.float64)
    # the shift that best aligns frame 1 with frame 0 is the motion, 1-2 pixels along the label's axis
    errors = {}
    for s in range(-3, 4):
        errors[s] = np.mean((np.roll(clip[0], s, axis=axis) - clip[1]) ** 2)
    best = min(errors, key=errors.get)
    assert np.sign(best) == sign and 1 <= abs(best) <= 2


def test_write_and_decode(tmp_path):
    clips, _ = make_clips(3, seed=0, frames=8, size=32)
    frames = clips.reshape(-1, 32, 32)
    write_video(tmp_path / "x.mkv", frames, codec="ffv1")
    back, fps = read_frames(tmp_path / "x.mkv")
    assert np.array_equal(back, frames) and fps == 25  # ffv1 is lossless
    write_video(tmp_path / "x.mp4", frames, codec="libx264")
    got, starts, _ = read_clips(tmp_path / "x.mp4", clip_frames=8)
    assert got.shape == clips.shape and list(starts) == [0, 8, 16]
    assert np.abs(got.astype(int) - clips).mean() < 6
    small, _ = to_clips(frames, clip_frames=8, size=16)
    assert small.shape == (3, 8, 16, 16)


def test_bad_videos(tmp_path):
    with pytest.raises(VideoError, match="no such video"):
        read_frames(tmp_path / "none.mp4")
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(VideoError):
        read_frames(tmp_path / "empty.mp4")
    (tmp_path / "junk.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
    with pytest.raises(VideoError, match="cannot decode|no decodable|no video stream"):
        read_frames(tmp_path / "junk.mp4")
    clips, _ = make_clips(1, seed=0, frames=8, size=32)
    write_video(tmp_path / "short.mp4", clips[0])
    with pytest.raises(VideoError, match="one clip needs 16"):
        read_clips(tmp_path / "short.mp4", clip_frames=16)
    with pytest.raises(ValueError, match="use one of"):
        write_video(tmp_path / "y.mp4", clips[0], codec="vp9")


def test_truncated_video_keeps_what_decodes(tmp_path):
    clips, _ = make_clips(4, seed=0, frames=8, size=32)
    write_video(tmp_path / "full.mp4", clips.reshape(-1, 32, 32))
    data = (tmp_path / "full.mp4").read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 2])
    try:
        frames, _ = read_frames(tmp_path / "cut.mp4")
    except VideoError as exc:  # a cut-off mp4 may lose its index (moov atom): then nothing decodes
        assert "cut.mp4" in str(exc)
    else:
        assert 0 < len(frames) <= 32


def test_train_and_predict_from_a_video_file(tmp_path, capsys):
    from cnnkit.cli.main import main
    from cnnkit.ndconv.video.train import VideoSettings, predict_video, save_video_model, train_video
    from cnnkit.runtime.training import FitSettings

    settings = VideoSettings(arch="3d", frames=8, size=16, train_clips=64, val_clips=16,
                             train=FitSettings(epochs=1, batch_size=16, threads=1, device="cpu"))
    trained = train_video(settings=settings)
    path = save_video_model(tmp_path / "v.safetensors", trained)
    clips, _labels = make_clips(3, seed=9, frames=8, size=16)
    write_video(tmp_path / "t.mp4", clips.reshape(-1, 16, 16))
    preds = predict_video(path, tmp_path / "t.mp4", device="cpu")
    assert [p.start_frame for p in preds] == [0, 8, 16] and all(p.label in DIRECTIONS for p in preds)
    assert main(["ndconv", "video", "predict", str(tmp_path / "t.mp4"), "--model", str(path), "--json"]) == 0
    capsys.readouterr()
    (tmp_path / "bad.mp4").write_bytes(b"garbage" * 100)
    assert main(["ndconv", "video", "predict", str(tmp_path / "bad.mp4"), "--model", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cnnkit: error:") and err.count("\n") == 1
