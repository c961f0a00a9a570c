"""The face engine's queue: batches across callers, back-pressure, deadlines, failures (models stubbed)."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest

from cnnkit.errors import Overloaded, TimedOut
from cnnkit.service.engine import FaceEngine

pytestmark = pytest.mark.usefixtures("face_weights")


class SlowEngine(FaceEngine):
    """The real queue and thread; `_process` replaced by a slow stand-in that records its batches."""

    def __init__(self, delay: float = 0.2, fail_on: int | None = None, **kw) -> None:
        super().__init__(device="cpu", **kw)
        self.delay = delay
        self.fail_on = fail_on
        self.seen: list[int] = []
        self.running = threading.Event()

    def _process(self, images):
        if not self.ready:  # the warm-up
            return [[] for _ in images]
        self.running.set()
        self.seen.append(len(images))
        time.sleep(self.delay)
        if self.fail_on is not None and len(self.seen) == self.fail_on:
            raise RuntimeError("model failure")
        return [[int(im[0, 0, 0])] for im in images]  # each photo's answer: its own marker


def image(marker: int) -> np.ndarray:
    return np.full((4, 4, 3), marker, np.uint8)


@pytest.fixture
def make():
    engines = []

    def build(**kw) -> SlowEngine:
        engine = SlowEngine(**kw)
        engine.start()
        engines.append(engine)
        return engine

    yield build
    for engine in engines:
        engine.stop()


def test_callers_that_queue_while_the_models_run_share_the_next_batch(make):
    engine = make(batch_size=8)
    first = engine.submit([image(1)], timeout_s=30)
    engine.running.wait(5)
    waiting = [engine.submit([image(10 + i)], timeout_s=30) for i in range(3)]
    waiting.append(engine.submit([image(20), image(21)], timeout_s=30))
    assert first.result(10) == [[1]]
    assert [f.result(10) for f in waiting] == [[[10]], [[11]], [[12]], [[20], [21]]]
    assert engine.seen == [1, 5] and engine.stats.largest_batch == 5 and engine.stats.batches == 2


def test_batch_size_bounds_a_batch_and_one_turns_batching_off(make):
    engine = make(batch_size=1, delay=0.05)
    engine.submit([image(1)], timeout_s=30)
    engine.running.wait(5)
    futures = [engine.submit([image(i)], timeout_s=30) for i in range(3)]
    assert [f.result(10) for f in futures] == [[[0]], [[1]], [[2]]]
    assert engine.seen == [1, 1, 1, 1]


def test_a_full_queue_refuses_at_once(make):
    engine = make(max_queue=2, delay=0.3)
    engine.submit([image(1)], timeout_s=30)
    engine.running.wait(5)
    engine.submit([image(2), image(3)], timeout_s=30)
    with pytest.raises(Overloaded):
        engine.submit([image(4)], timeout_s=30)


def test_work_not_started_before_its_deadline_is_dropped(make):
    engine = make(delay=0.4)
    engine.submit([image(1)], timeout_s=30)
    engine.running.wait(5)
    late = engine.submit([image(2)], timeout_s=0.05)
    with pytest.raises(TimedOut):
        late.result(10)
    assert engine.stats.dropped == 1 and engine.seen == [1]


def test_a_failing_batch_fails_its_callers_and_the_engine_goes_on(make):
    engine = make(fail_on=1, delay=0.05)
    with pytest.raises(RuntimeError, match="model failure"):
        engine.submit([image(1)], timeout_s=30).result(10)
    assert engine.submit([image(2)], timeout_s=30).result(10) == [[2]]


def test_embed_awaits_the_result(make):
    engine = make(delay=0.01)
    assert asyncio.run(engine.embed([image(7)], timeout_s=5)) == [[7]]
    assert asyncio.run(engine.embed([], timeout_s=5)) == []


# -- the real models ---------------------------------------------------------------------------


def test_a_batch_of_photos_of_different_sizes_gives_what_each_gives_alone():
    """Batching across requests must not change answers: same faces, boxes and embeddings."""
    from cnnkit.images import load_image
    from tests.conftest import lfw_image

    portrait = load_image(lfw_image("Colin_Powell", 1))
    pair = np.concatenate([load_image(lfw_image("Aaron_Eckhart", 1)), load_image(lfw_image("Tony_Blair", 1))], 1)
    wall = np.full((100, 130, 3), 90, np.uint8)
    engine = FaceEngine(device="cpu")
    together = engine._process([portrait, pair, wall])
    alone = [engine._process([im])[0] for im in (portrait, pair, wall)]
    assert [len(f) for f in together] == [len(f) for f in alone] and len(together[0]) == 1
    assert len(together[1]) >= 2 and together[2] == []
    for faces, reference in zip(together, alone):
        for face, ref in zip(faces, reference):
            assert np.allclose(face.box, ref.box, atol=0.01)
            assert face.embedding.shape == (128,)
            assert np.abs(face.embedding - ref.embedding).max() < 1e-3
