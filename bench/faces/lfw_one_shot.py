"""One-shot galleries of 4, 30, 300 and 1,680 people from LFW: known people named, strangers turned away.

For each size, people with two or more photos (LFW View 2's people) are drawn
at random (seeded; several draws for the small sizes); each is enrolled from
one photo, their other photos are the known probes, and as many photos of
people not enrolled (as many as there are; 4,069 photos of people with a single
photo at 1,680) are the strangers. cnnkit answers at default settings (a real
gallery per draw, `Gallery.identify_embeddings`, the size-aware 1:K threshold
for 1 % FPIR: no per-run tuning); face_recognition at its documented tolerance
0.6 (the nearest of `compare_faces`' matches). Balanced accuracy = (known
probes named correctly + strangers answered unknown) / 2.

    python -m bench.faces.lfw_one_shot [--encoders NAME ...] [--skip-peer]

Embeddings from bench.faces.lfw_embeddings (cached). Writes bench/results/lfw_one_shot.json.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.common import LFW, save_result
from bench.faces.lfw_embeddings import DETECTED, face_recognition_embeddings, lfw_set
from cnnkit.faces.catalog import ENCODERS, FUSIONS
from cnnkit.faces.gallery import Gallery
from cnnkit.faces.gallery.store import EmbeddingRecord
from cnnkit.faces.settings import DEFAULT_ENCODER

SIZES = (4, 30, 300, 1680)
DRAWS = {4: 20, 30: 10, 300: 3, 1680: 1}


def draws(people: dict[str, list[str]], size: int, count: int, seed: int) -> list[tuple[list[str], list[str]]]:
    """(enrolled people, stranger photos) for `count` seeded draws of `size` people."""
    rng = np.random.default_rng(seed + size)
    several = sorted(n for n, p in people.items() if len(p) >= 2)
    out = []
    for _ in range(count):
        chosen = sorted(rng.choice(several, size=min(size, len(several)), replace=False).tolist())
        known = sum(len(people[n]) - 1 for n in chosen)
        others = [p for n in sorted(set(people) - set(chosen)) for p in people[n]]
        strangers = sorted(rng.choice(others, size=min(known, len(others)), replace=False).tolist())
        out.append((chosen, strangers))
    return out


def score(named_right: list[bool], strangers_in: list[bool]) -> dict:
    dir_, fpir = float(np.mean(named_right)), float(np.mean(strangers_in))
    return {"known_named_right": dir_, "strangers_let_in": fpir, "balanced_accuracy": (dir_ + 1 - fpir) / 2}


def run_cnnkit(encoder: str, emb: dict[str, np.ndarray], people, chosen, strangers, tmp: Path) -> tuple[dict, dict]:
    path = tmp / f"{encoder.replace('/', '_')}-{len(chosen)}-{time.time_ns()}.db"
    with Gallery(path, create=True, encoder=encoder) as gallery:
        for name in chosen:
            photo = people[name][0]
            if photo in emb:  # an enrollment photo without a face: that person is never named
                gallery.enroll_embeddings(name, [EmbeddingRecord(vector=emb[photo], source=photo)], new_person=True)
        probes = [(n, p) for n in chosen for p in people[n][1:]]

        def answer(photos: list[str]) -> list[str | None]:
            have = [p for p in photos if p in emb]
            got = dict(zip(have, gallery.identify_embeddings(np.stack([emb[p] for p in have]), top_k=1))) if have \
                else {}
            return [got[p].name if p in got else None for p in photos]

        names = answer([p for _, p in probes])
        point = gallery.operating_point().to_dict()
        return score([a == n for a, (n, _) in zip(names, probes)], [a is not None for a in answer(strangers)]), point


def run_face_recognition(emb: dict[str, np.ndarray], people, chosen, strangers) -> dict:
    known = [n for n in chosen if people[n][0] in emb]
    table = np.stack([emb[people[n][0]] for n in known])

    def answer(photo: str) -> str | None:
        if photo not in emb:
            return None
        d = np.linalg.norm(table - emb[photo], axis=1)
        best = int(d.argmin())
        return known[best] if d[best] <= 0.6 else None  # compare_faces(tolerance=0.6), the nearest match

    probes = [(n, p) for n in chosen for p in people[n][1:]]
    return score([answer(p) == n for n, p in probes], [answer(p) is not None for p in strangers])


def mean_of(rows: list[dict]) -> dict:
    return {k: round(float(np.mean([r[k] for r in rows])), 4) for k in rows[0]} | {"draws": len(rows)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--encoders", nargs="+", default=[DEFAULT_ENCODER, "dlib-resnet-v1", "w600k-mbf",
                                                      "dlib-resnet-v1+sface-2021dec"])
    ap.add_argument("--sizes", nargs="+", type=int, default=list(SIZES))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip-peer", action="store_true")
    ap.add_argument("--out", help="result file (default bench/results/lfw_one_shot.json)")
    args = ap.parse_args()
    view2 = [line.split() for line in (LFW / "people.txt").read_text().splitlines()[1:]]
    names = sorted({row[0] for row in view2 if len(row) == 2})
    photos, found, vectors = lfw_set(list(ENCODERS))
    by_person: dict[str, list[str]] = {}
    for photo in photos:  # sorted, so each person's photos in order
        by_person.setdefault(photo.split("/")[0], []).append(photo)
    people = {n: by_person[n] for n in names if n in by_person}
    detected = {photos[i] for i in range(len(photos)) if found["status"][i] == DETECTED}
    fr = face_recognition_embeddings(photos)[0] if not args.skip_peer else None
    result: dict = {"people_with_two_or_more_photos": sum(len(p) >= 2 for p in people.values()),
                    "sizes": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            cases = draws(people, size, DRAWS.get(size, 3), args.seed)
            row: dict = {"draws": len(cases), "known_probes_per_draw": round(float(np.mean(
                [sum(len(people[n]) - 1 for n in c) for c, _ in cases])), 1),
                "strangers_per_draw": round(float(np.mean([len(s) for _, s in cases])), 1)}
            for encoder in args.encoders:
                if encoder in FUSIONS:
                    v = np.concatenate([np.sqrt(w) * vectors[part] for part, w in FUSIONS[encoder].parts], axis=1)
                else:
                    v = vectors[encoder]
                emb = {p: v[i] for i, p in enumerate(photos) if p in detected}
                scored = [run_cnnkit(encoder, emb, people, c, s, Path(tmp)) for c, s in cases]
                row[f"cnnkit {encoder}"] = {**mean_of([s for s, _ in scored]), "operating_point": scored[0][1]}
            if fr is not None:
                row["face_recognition"] = mean_of([run_face_recognition(fr, people, c, s) for c, s in cases])
            result["sizes"][str(size)] = row
            print(size, {k: v["balanced_accuracy"] for k, v in row.items() if isinstance(v, dict)}, flush=True)
    save_result("lfw_one_shot", result, out=args.out)


if __name__ == "__main__":
    main()
