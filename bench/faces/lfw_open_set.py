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

cnnkit enrolls into its real SQLite gallery (`Gallery.enroll_embeddings`) and
answers with `Gallery.identify_embeddings`; face_recognition answers as its
docs show: `compare_faces(known, probe, tolerance=0.6)` and the nearest match.
A photo in which a tool finds no face is a miss for a known probe and a
correct "unknown" for a stranger (counted and reported).

    python -m bench.faces.lfw_open_set [--skip-peer] [--cache DIR]

Writes bench/results/lfw_open_set.json.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.common import LFW, RESULTS, save_result
from bench.faces.lfw_verification import run_face_recognition
from cnnkit.faces.gallery import Gallery
from cnnkit.faces.gallery.store import EmbeddingRecord
from cnnkit.faces.pipeline import embed_images


def lfw_people(images: Path) -> dict[str, list[str]]:
    return {d.name: sorted(f"{d.name}/{p.name}" for p in d.glob("*.jpg"))
            for d in sorted(images.iterdir()) if d.is_dir()}


def encode_cnnkit(images: Path, paths: list[str]) -> tuple[dict[str, np.ndarray], float]:
    start = time.perf_counter()
    out = {}
    for rel, result in zip(paths, embed_images((images / p for p in paths), select="center", fallback=None)):
        if result.faces:
            out[rel] = result.faces[0].embedding
    return out, time.perf_counter() - start


def split(people: dict[str, list[str]], names: set[str] | None):
    chosen = {n: p for n, p in people.items() if names is None or n in names}
    enrolled = {n: p[0] for n, p in chosen.items() if len(p) >= 2}
    known = [(n, q) for n, p in chosen.items() if len(p) >= 2 for q in p[1:]]
    strangers = [p[0] for n, p in chosen.items() if len(p) == 1]
    return enrolled, known, strangers


def answers(emb: dict[str, np.ndarray], enrolled: dict[str, str], known, strangers, gallery_dir: Path, flip: bool):
    """(nearest name, distance) for each known probe and each stranger, via a real gallery."""
    gallery = Gallery(gallery_dir / f"g{len(enrolled)}-{time.time_ns()}.db", create=True, flip=flip)
    for name, photo in enrolled.items():
        if photo in emb:
            gallery.enroll_embeddings(name, [EmbeddingRecord(vector=emb[photo], source=photo)])
    not_enrolled = sum(photo not in emb for photo in enrolled.values())

    def ask(paths):
        have = [p for p in paths if p in emb]
        got = dict(zip(have, gallery.identify_embeddings(np.stack([emb[p] for p in have]), top_k=1))) if have else {}
        return [(got[p].candidates[0].name, got[p].candidates[0].distance) if p in got and got[p].candidates
                else (None, np.inf) for p in paths]

    result = ask([q for _, q in known]), ask(strangers), not_enrolled
    gallery.close()
    return result


def metrics(known, known_answers, stranger_answers, thresholds: dict[str, float]) -> dict:
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
    return out


def threshold_at_fpir(stranger_answers, fpir: float) -> float:
    d = np.sort(np.array([a[1] for a in stranger_answers]))
    allowed = int(np.floor(fpir * len(d)))
    return float(np.nextafter(d[allowed], -np.inf)) if allowed < len(d) else float(d[-1])


def evaluate(tool: str, emb: dict, people, dev_names: set[str], default_t: float, flip: bool, tmp: Path) -> dict:
    dev = split(people, dev_names)
    dev_known, dev_strangers, _ = answers(emb, *dev, tmp, flip)
    thresholds = {"at_default_threshold": default_t,
                  "at_FPIR_1%_dev": threshold_at_fpir(dev_strangers, 0.01),
                  "at_FPIR_10%_dev": threshold_at_fpir(dev_strangers, 0.10)}
    out = {"thresholds_from_dev": {k: v for k, v in thresholds.items() if "dev" in k},
           "dev": metrics(dev[1], dev_known, dev_strangers, thresholds)}
    for label, names in (("all_lfw", None), ("outside_dev_people", set(people) - dev_names)):
        enrolled, known, strangers = split(people, names)
        k_ans, s_ans, not_enrolled = answers(emb, enrolled, known, strangers, tmp, flip)
        out[label] = {"enrolled_people": len(enrolled) - not_enrolled, "enrollment_photo_without_face": not_enrolled,
                      **metrics(known, k_ans, s_ans, thresholds)}
    res = out["all_lfw"]
    print(f"{tool:17} rank-1 {res['rank1']:.4f}  DIR@FPIR1% {res['at_FPIR_1%_dev']['DIR']:.4f} "
          f"(FPIR {res['at_FPIR_1%_dev']['FPIR']:.4f})  DIR@FPIR10% {res['at_FPIR_10%_dev']['DIR']:.4f} "
          f"(FPIR {res['at_FPIR_10%_dev']['FPIR']:.4f})  "
          f"unknown rate at default {res['at_default_threshold']['unknown_rate']:.4f}",
          flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lfw", type=Path, default=LFW)
    parser.add_argument("--skip-peer", action="store_true")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--cache", type=Path, help="keep embeddings here between runs (npz)")
    parser.add_argument("--out", type=Path, default=RESULTS / "lfw_open_set.json")
    args = parser.parse_args()
    images = args.lfw / "images"
    people = lfw_people(images)
    dev_names = {line.split()[0] for line in (args.lfw / "peopleDevTrain.txt").read_text().splitlines()[1:]}
    paths = [p for ps in people.values() for p in ps]
    result: dict = {"what": "open-set identification on LFW, one photo enrolled per person",
                    "people": len(people), "photos": len(paths),
                    "people_with_2_or_more_photos": sum(len(p) >= 2 for p in people.values())}

    def cached(tool: str, compute):
        if args.cache:
            file = args.cache / f"{tool}.npz"
            if file.exists():
                data = np.load(file, allow_pickle=False)
                return {str(k): v for k, v in zip(data["paths"], data["vectors"])}, float(data["seconds"])
        emb, seconds = compute()
        if args.cache:
            args.cache.mkdir(parents=True, exist_ok=True)
            np.savez(args.cache / f"{tool}.npz", paths=np.array(list(emb)), vectors=np.stack(list(emb.values())),
                     seconds=seconds)
        return emb, seconds

    from cnnkit.faces.thresholds import default_threshold

    with tempfile.TemporaryDirectory() as tmp:
        emb, seconds = cached("cnnkit", lambda: encode_cnnkit(images, paths))
        result["cnnkit"] = {"encode_images_per_second": len(paths) / seconds,
                            **evaluate("cnnkit", emb, people, dev_names, default_threshold(), True, Path(tmp))}
        if not args.skip_peer:
            def fr():
                enc, secs = run_face_recognition([str(images / p) for p in paths], args.processes)
                return {p: enc[str(images / p)] for p in paths if str(images / p) in enc}, secs
            emb_fr, seconds_fr = cached("face_recognition", fr)
            result["face_recognition"] = {"encode_images_per_second": len(paths) / seconds_fr,
                                          "settings": "compare_faces(tolerance=0.6): nearest of the matches",
                                          **evaluate("face_recognition", emb_fr, people, dev_names, 0.6, True,
                                                     Path(tmp))}
    print(f"wrote {save_result('lfw_open_set', result, out=args.out)}")


if __name__ == "__main__":
    main()
