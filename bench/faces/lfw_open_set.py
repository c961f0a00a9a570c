"""Open-set identification on LFW with one-shot enrollment, cnnkit against face_recognition.

Protocol: every person with two or more photos is enrolled from exactly one
photo (their first); their other photos are probes of known people; the photos
of people with a single photo are probes of strangers, who must be answered
"unknown". For each probe the gallery returns its nearest person and distance.

- rank-1: known probes whose nearest person is the right one (closed set);
- at a threshold t: DIR(t), known probes identified correctly with distance <= t;
  FPIR(t), strangers wrongly accepted (distance <= t); "unknown" rate = 1 - FPIR;
- DIR at FPIR 1 % and 10 %: t is chosen on the LFW View-1 development people
  (peopleDevTrain.txt) run through the same protocol, never on the test people,
  then applied to (a) all of LFW, as asked, and (b) only the people outside
  peopleDevTrain (disjoint from the tuning).

cnnkit enrolls into its real SQLite gallery (`Gallery.enroll_embeddings`, one
gallery per encoder) and answers with `Gallery.identify_embeddings`, whose own
decision at default settings (the size-aware 1:K threshold for 1 % FPIR, from
the encoder's impostor table measured on View 1 training people) is reported as
`at_gallery_default`; face_recognition answers as its docs show:
`compare_faces(known, probe, tolerance=0.6)` and the nearest match. cnnkit's
embeddings come from bench.faces.lfw_embeddings (its face path, cached), without
its evaluation-only centre-box fallback: a photo where MTCNN finds no face has none.
A photo in which a tool finds no face is a miss for a known probe and a
correct "unknown" for a stranger (counted and reported).

    python -m bench.faces.lfw_open_set [--skip-peer] [--encoders NAME ...]

Writes bench/results/lfw_open_set.json.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.common import LFW, RESULTS, save_result
from bench.faces.lfw_embeddings import DETECTED, face_recognition_embeddings, lfw_set
from cnnkit.faces.catalog import ENCODERS
from cnnkit.faces.gallery import Gallery
from cnnkit.faces.gallery.store import EmbeddingRecord
from cnnkit.faces.settings import DEFAULT_ENCODER


def lfw_people(images: Path) -> dict[str, list[str]]:
    return {d.name: sorted(f"{d.name}/{p.name}" for p in d.glob("*.jpg"))
            for d in sorted(images.iterdir()) if d.is_dir()}


def split(people: dict[str, list[str]], names: set[str] | None):
    chosen = {n: p for n, p in people.items() if names is None or n in names}
    enrolled = {n: p[0] for n, p in chosen.items() if len(p) >= 2}
    known = [(n, q) for n, p in chosen.items() if len(p) >= 2 for q in p[1:]]
    strangers = [p[0] for n, p in chosen.items() if len(p) == 1]
    return enrolled, known, strangers


def answers(emb: dict[str, np.ndarray], enrolled: dict[str, str], known, strangers, gallery_dir: Path, flip: bool,
            encoder: str | None = None):
    """(nearest name, distance, the gallery's own answer) for each known probe and stranger, via a real gallery.

    `encoder`: the gallery's (its impostor table sets the 1:K threshold); None for another tool's vectors.
    """
    gallery = Gallery(gallery_dir / f"g{len(enrolled)}-{time.time_ns()}.db", create=True, flip=flip,
                      encoder=encoder)
    for name, photo in enrolled.items():
        if photo in emb:
            gallery.enroll_embeddings(name, [EmbeddingRecord(vector=emb[photo], source=photo)])
    not_enrolled = sum(photo not in emb for photo in enrolled.values())

    def ask(paths):
        have = [p for p in paths if p in emb]
        got = dict(zip(have, gallery.identify_embeddings(np.stack([emb[p] for p in have]), top_k=1))) if have else {}
        return [(got[p].candidates[0].name, got[p].candidates[0].distance, got[p].name)
                if p in got and got[p].candidates else (None, np.inf, None) for p in paths]

    result = ask([q for _, q in known]), ask(strangers), not_enrolled
    gallery.close()
    return result


def metrics(known, known_answers, stranger_answers, thresholds: dict[str, float], gallery_default: bool) -> dict:
    truth = np.array([n for n, _ in known])
    names = np.array([a[0] if a[0] is not None else "" for a in known_answers])
    kd = np.array([a[1] for a in known_answers])
    sd = np.array([a[1] for a in stranger_answers])
    correct = names == truth
    out = {"known_probes": len(known), "strangers": len(sd), "rank1": float(correct.mean()),
           "known_probes_without_face": int(np.isinf(kd).sum()), "strangers_without_face": int(np.isinf(sd).sum())}
    for label, t in thresholds.items():
        out[label] = {"threshold": t, "DIR": float(np.mean(correct & (kd <= t))), "FPIR": float(np.mean(sd <= t)),
                      "unknown_rate": float(np.mean(sd > t))}
    if gallery_default:  # what the gallery itself answered, at its default settings
        dir_ = float(np.mean(np.array([a[2] for a in known_answers], dtype=object) == truth))
        fpir = float(np.mean([a[2] is not None for a in stranger_answers]))
        out["at_gallery_default"] = {"DIR": dir_, "FPIR": fpir, "unknown_rate": 1 - fpir,
                                     "balanced_accuracy": (dir_ + 1 - fpir) / 2}
    return out


def threshold_at_fpir(stranger_answers, fpir: float) -> float:
    d = np.sort(np.array([a[1] for a in stranger_answers]))
    allowed = int(np.floor(fpir * len(d)))
    return float(np.nextafter(d[allowed], -np.inf)) if allowed < len(d) else float(d[-1])


def evaluate(tool: str, emb: dict, people, dev_names: set[str], default_t: float, flip: bool, tmp: Path,
             encoder: str | None = None) -> dict:
    dev = split(people, dev_names)
    dev_known, dev_strangers, _ = answers(emb, *dev, tmp, flip, encoder)
    thresholds = {"at_default_threshold": default_t,
                  "at_FPIR_1%_dev": threshold_at_fpir(dev_strangers, 0.01),
                  "at_FPIR_10%_dev": threshold_at_fpir(dev_strangers, 0.10)}
    out = {"thresholds_from_dev": {k: v for k, v in thresholds.items() if "dev" in k},
           "dev": metrics(dev[1], dev_known, dev_strangers, thresholds, encoder is not None)}
    for label, names in (("all_lfw", None), ("outside_dev_people", set(people) - dev_names)):
        enrolled, known, strangers = split(people, names)
        k_ans, s_ans, not_enrolled = answers(emb, enrolled, known, strangers, tmp, flip, encoder)
        out[label] = {"enrolled_people": len(enrolled) - not_enrolled, "enrollment_photo_without_face": not_enrolled,
                      **metrics(known, k_ans, s_ans, thresholds, encoder is not None)}
    res = out["all_lfw"]
    print(f"{tool:17} rank-1 {res['rank1']:.4f}  DIR@FPIR1% {res['at_FPIR_1%_dev']['DIR']:.4f} "
          f"(FPIR {res['at_FPIR_1%_dev']['FPIR']:.4f})  DIR@FPIR10% {res['at_FPIR_10%_dev']['DIR']:.4f} "
          f"(FPIR {res['at_FPIR_10%_dev']['FPIR']:.4f})  "
          f"unknown rate at the 1:1 threshold {res['at_default_threshold']['unknown_rate']:.4f}"
          + (f"  gallery default: DIR {res['at_gallery_default']['DIR']:.4f} "
             f"FPIR {res['at_gallery_default']['FPIR']:.4f}" if "at_gallery_default" in res else ""), flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lfw", type=Path, default=LFW)
    parser.add_argument("--skip-peer", action="store_true")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--encoders", nargs="+", default=[DEFAULT_ENCODER, "dlib-resnet-v1", "w600k-mbf",
                                                          "dlib-resnet-v1+sface-2021dec"])
    parser.add_argument("--out", type=Path, default=RESULTS / "lfw_open_set.json")
    args = parser.parse_args()
    images = args.lfw / "images"
    people = lfw_people(images)
    dev_names = {line.split()[0] for line in (args.lfw / "peopleDevTrain.txt").read_text().splitlines()[1:]}
    paths = [p for ps in people.values() for p in ps]
    result: dict = {"what": "open-set identification on LFW, one photo enrolled per person",
                    "people": len(people), "photos": len(paths),
                    "people_with_2_or_more_photos": sum(len(p) >= 2 for p in people.values())}

    from cnnkit.faces.thresholds import default_threshold

    with tempfile.TemporaryDirectory() as tmp:
        photos, found, vectors = lfw_set(list(ENCODERS))
        detected = [i for i in range(len(photos)) if found["status"][i] == DETECTED]
        result["photos_without_face_cnnkit"] = len(photos) - len(detected)
        for encoder in args.encoders:
            if "+" in encoder:  # a fusion: its parts' vectors, each scaled by sqrt(weight)
                from cnnkit.faces.catalog import FUSIONS

                v = np.concatenate([np.sqrt(w) * vectors[part] for part, w in FUSIONS[encoder].parts], axis=1)
            else:
                v = vectors[encoder]
            emb = {photos[i]: v[i] for i in detected}
            result[f"cnnkit {encoder}"] = evaluate(f"cnnkit {encoder}", emb, people, dev_names,
                                                   default_threshold(encoder), True, Path(tmp), encoder)
        if not args.skip_peer:  # vectors of face_recognition: no impostor table, its own 0.6 rule
            emb_fr, _ = face_recognition_embeddings(photos, processes=args.processes)
            result["face_recognition"] = {"settings": "compare_faces(tolerance=0.6): nearest of the matches",
                                          **evaluate("face_recognition", emb_fr, people, dev_names, 0.6, True,
                                                     Path(tmp))}
    print(f"wrote {save_result('lfw_open_set', result, out=args.out)}")


if __name__ == "__main__":
    main()
