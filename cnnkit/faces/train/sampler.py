"""P x K batches: P people, K images of each, so every batch holds positives and negatives to mine.

People with fewer than K images contribute their images with repetition (a
repeated image still gets its own augmentation); people with a single image
cannot be sampled (no positive) and are refused by the dataset before this.
Seeded: epoch e of a sampler with seed s always yields the same batches.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from ...errors import SettingsError


class PKSampler:
    """Yields index arrays of P * K images; one epoch visits every person about once."""

    def __init__(self, labels: np.ndarray, *, p: int, k: int, seed: int = 0,
                 batches_per_epoch: int | None = None) -> None:
        if p < 2:
            raise SettingsError(f"batch P (people per batch) must be at least 2, got {p}")
        if k < 2:
            raise SettingsError(f"batch K (images per person) must be at least 2, got {k}")
        labels = np.asarray(labels)
        self.people = np.unique(labels)
        if len(self.people) < p:
            raise SettingsError(f"batch P={p} people per batch, but the dataset has {len(self.people)} people")
        self.by_person = {int(c): np.flatnonzero(labels == c) for c in self.people}
        if min(len(v) for v in self.by_person.values()) < 2:
            raise SettingsError("every person needs at least 2 images (no positive pair otherwise)")
        self.p, self.k, self.seed = p, k, seed
        self.batches_per_epoch = batches_per_epoch or max(1, len(self.people) // p)

    def __len__(self) -> int:
        return self.batches_per_epoch

    def epoch(self, epoch: int) -> Iterator[np.ndarray]:
        rng = np.random.default_rng([self.seed, epoch])
        order = np.array([], dtype=self.people.dtype)
        for _ in range(self.batches_per_epoch):
            if len(order) < self.p:  # a new pass over the people, each once, in random order
                order = np.concatenate([order, rng.permutation(self.people)])
            chosen, order = order[:self.p], order[self.p:]
            batch = []
            for person in chosen:
                images = self.by_person[int(person)]
                batch.append(rng.choice(images, size=self.k, replace=len(images) < self.k))
            yield np.concatenate(batch)
