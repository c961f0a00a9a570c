"""Load test of `cnnkit serve` on loopback: N concurrent clients mixing identify, verify and enroll.

    python -m bench.service.service_load                              # 8 clients, 60 s, batching on
    python -m bench.service.service_load --configs batch1,batch8      # the same load without and with batching
    python -m bench.service.service_load --duration 20 --clients 4    # quicker

For each configuration: a fresh gallery and server (`python -m cnnkit.service`,
a subprocess on 127.0.0.1), 10 people enrolled first, then N clients in one
asyncio process send requests back to back for `--duration` seconds (and at most
`--max-requests`): identify (a new photo of an enrolled person), verify (a
claim by id) and enroll (a new person, one photo), mixed by `--mix`. Reported:
requests/s, p50/p95/p99 latency per kind and overall, errors (any answer that is
not the expected success, and any transport failure or timeout; target 0),
whether every enrollment answered 201 is in the gallery afterwards (read from the
file itself), how the server batched, and the load average of the machine
during the run (it is shared). JSON in bench/results/service_load.json.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import LFW, RESULTS, save_result

CONFIGS = {
    "batch1": {"batch_size": 1, "workers": 1, "threads": 1},
    "batch8": {"batch_size": 8, "workers": 1, "threads": 1},
    "batch8-threads2": {"batch_size": 8, "workers": 1, "threads": 2},
    "batch8-workers2": {"batch_size": 8, "workers": 2, "threads": 1},
}
SEED_PEOPLE = 10


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def lfw_people(min_photos: int) -> list[tuple[str, list[Path]]]:
    root = LFW / "images"
    if not root.is_dir():
        raise SystemExit(f"LFW images not found at {root} (set CNNKIT_LFW)")
    people = []
    for folder in sorted(root.iterdir()):
        photos = sorted(folder.glob("*.jpg"))
        if len(photos) >= min_photos:
            people.append((folder.name, photos))
    return people


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[k]


def summary(latencies: list[float], seconds: float) -> dict:
    ms = [v * 1000 for v in latencies]
    return {"requests": len(ms), "per_second": round(len(ms) / seconds, 2),
            "p50_ms": _r(percentile(ms, 50)), "p95_ms": _r(percentile(ms, 95)), "p99_ms": _r(percentile(ms, 99)),
            "mean_ms": _r(statistics.fmean(ms)) if ms else None, "max_ms": _r(max(ms)) if ms else None}


def _r(v: float | None) -> float | None:
    return None if v is None else round(v, 1)


def start_server(gallery: Path, port: int, cfg: dict, log: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "cnnkit.service", "--gallery", str(gallery), "--port", str(port),
           "--workers", str(cfg["workers"]), "--threads", str(cfg["threads"]), "--batch-size", str(cfg["batch_size"]),
           "--no-access-log"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(cmd, stdout=log.open("w"), stderr=subprocess.STDOUT, env=env, start_new_session=True)


def stop_server(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


async def wait_ready(http, proc: subprocess.Popen, timeout: float, workers: int) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited with status {proc.returncode}")
        try:
            answer = await http.get("/health")
            if answer.status_code == 200 and answer.json()["ready"]:
                if workers == 1:
                    return
                await asyncio.sleep(2.0 * workers)  # every worker loads its models before serving
                return
        except Exception:
            pass
        await asyncio.sleep(0.25)
    raise SystemExit("the server did not become ready in time")


async def run_config(name: str, cfg: dict, args: argparse.Namespace, work: Path) -> dict:
    import httpx

    from cnnkit.faces.gallery import Gallery
    from cnnkit.faces.gallery.keys import create_key
    from cnnkit.faces.gallery.store import GalleryStore

    gallery = work / f"{name}.db"
    store = GalleryStore(gallery, create=True)
    write_key, _ = create_key(store, "write", label="load test")
    read_key, _ = create_key(store, "read", label="load test")
    store.close()
    port = free_port()
    log = work / f"{name}.log"
    proc = start_server(gallery, port, cfg, log)
    rng = random.Random(args.seed)
    people = lfw_people(min_photos=4)
    seeds, pool = people[:SEED_PEOPLE], people[SEED_PEOPLE:]
    rng.shuffle(pool)
    photo_bytes: dict[Path, bytes] = {}

    def data(path: Path) -> bytes:
        if path not in photo_bytes:
            photo_bytes[path] = path.read_bytes()
        return photo_bytes[path]

    w = {"Authorization": f"Bearer {write_key}"}
    r = {"Authorization": f"Bearer {read_key}"}
    limits = httpx.Limits(max_connections=args.clients + 2, max_keepalive_connections=args.clients + 2)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=args.timeout, limits=limits) as http:
            await wait_ready(http, proc, 300, cfg["workers"])
            seeded = []
            for folder, photos in seeds:
                answer = await http.post("/people", headers=w,
                                         data={"name": folder.replace("_", " "), "pick": "largest"},
                                         files={"photos": (photos[0].name, data(photos[0]), "image/jpeg")})
                answer.raise_for_status()
                seeded.append((answer.json()["id"], folder.replace("_", " "), photos[1:]))
            weights = [args.mix["identify"], args.mix["verify"], args.mix["enroll"]]
            records: list[dict] = []
            enrolled: list[tuple[int, str]] = []
            pool_iter = itertools.cycle(pool)  # names stay unique: each carries a request number
            load_samples: list[float] = []
            start = time.monotonic()
            deadline = start + args.duration

            async def sample_load() -> None:
                while time.monotonic() < deadline:
                    load_samples.append(os.getloadavg()[0])
                    await asyncio.sleep(1.0)

            async def client(index: int) -> None:
                crng = random.Random(args.seed * 1000 + index)
                while time.monotonic() < deadline and len(records) < args.max_requests:
                    kind = crng.choices(["identify", "verify", "enroll"], weights)[0]
                    pid, pname, photos = crng.choice(seeded)
                    sent = time.perf_counter()
                    expected = 200
                    try:
                        if kind == "identify":
                            p = crng.choice(photos)
                            answer = await http.post("/identify", headers=r,
                                                     files={"photo": (p.name, data(p), "image/jpeg")})
                        elif kind == "verify":
                            p = crng.choice(photos)
                            answer = await http.post("/verify", headers=r, data={"person_id": str(pid)},
                                                     files={"photo": (p.name, data(p), "image/jpeg")})
                        else:
                            expected = 201
                            folder, new_photos = next(pool_iter)
                            new_name = f"{folder.replace('_', ' ')} [{index}-{len(records)}]"
                            answer = await http.post("/people", headers=w, data={"name": new_name, "pick": "largest"},
                                                     files={"photos": (new_photos[0].name, data(new_photos[0]),
                                                                       "image/jpeg")})
                        status, body = answer.status_code, answer.json()
                    except Exception as exc:  # transport failure or timeout: an error
                        status, body = 0, {"error": {"code": type(exc).__name__, "message": str(exc)}}
                    elapsed = time.perf_counter() - sent
                    rec = {"kind": kind, "status": status, "s": elapsed, "ok": status == expected}
                    if not rec["ok"]:
                        rec["error"] = body.get("error", {}).get("code") if isinstance(body, dict) else str(body)
                    elif kind == "enroll":
                        enrolled.append((body["id"], body["name"]))
                    elif kind == "identify":
                        names = [f["name"] for f in body["faces"]]
                        rec["correct"] = pname in names
                    elif kind == "verify":
                        rec["correct"] = bool(body["match"])
                    records.append(rec)

            sampler = asyncio.create_task(sample_load())
            await asyncio.gather(*(client(i) for i in range(args.clients)))
            elapsed = time.monotonic() - start
            await sampler
            batching = (await http.get("/version", headers=r)).json()["batching"]
            listed = (await http.get("/people", headers=r, params={"limit": 10000})).json()
    finally:
        stop_server(proc)

    # Every enrollment that answered 201 must be in the gallery file, under its name, with its photo.
    with Gallery(gallery, readonly=True) as g:
        stored = {p.id: p for p in g.people()}
        problems = g.check()
    missing = [(i, n) for i, n in enrolled if i not in stored or stored[i].name != n or stored[i].embeddings != 1]
    out = {"config": name, **cfg, "clients": args.clients, "duration_s": round(elapsed, 1),
           "overall": summary([x["s"] for x in records], elapsed),
           "errors": sum(not x["ok"] for x in records),
           "error_codes": _count(x.get("error") or str(x["status"]) for x in records if not x["ok"]),
           "by_kind": {}, "enrolled_ok": len(enrolled), "enrolled_missing_after": len(missing),
           "people_listed_after": listed["total"], "expected_people_after": SEED_PEOPLE + len(enrolled),
           "gallery_check": problems or "ok",
           "server_batching_one_worker": batching,
           "load_average_1min": {"before": load_samples[0] if load_samples else None,
                                 "mean": round(statistics.fmean(load_samples), 2) if load_samples else None,
                                 "max": max(load_samples) if load_samples else None}}
    for kind in ("identify", "verify", "enroll"):
        rows = [x for x in records if x["kind"] == kind]
        out["by_kind"][kind] = {**summary([x["s"] for x in rows], elapsed),
                                "errors": sum(not x["ok"] for x in rows)}
        judged = [x["correct"] for x in rows if "correct" in x]
        if judged:
            out["by_kind"][kind]["correct_fraction"] = round(sum(judged) / len(judged), 3)
    return out


def _count(items) -> dict:
    counts: dict = {}
    for item in items:
        counts[item] = counts.get(item, 0) + 1
    return counts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load per configuration (max 600)")
    parser.add_argument("--max-requests", type=int, default=20000, help="stop a configuration after this many")
    parser.add_argument("--configs", default="batch8", help=f"comma-separated, of {', '.join(CONFIGS)}")
    parser.add_argument("--mix", default="identify=0.5,verify=0.3,enroll=0.2")
    parser.add_argument("--timeout", type=float, default=120.0, help="client timeout per request, seconds")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(RESULTS / "service_load.json"))
    args = parser.parse_args()
    args.duration = min(args.duration, 600.0)
    args.mix = {k: float(v) for k, v in (item.split("=") for item in args.mix.split(","))}
    names = [c.strip() for c in args.configs.split(",") if c.strip()]
    for n in names:
        if n not in CONFIGS:
            raise SystemExit(f"unknown config {n!r}; choose from {', '.join(CONFIGS)}")
    report = {"benchmark": "service_load", "mix": args.mix, "clients": args.clients, "duration_s": args.duration,
              "runs": []}
    with tempfile.TemporaryDirectory(prefix="cnnkit-load-") as tmp:
        for name in names:
            result = asyncio.run(run_config(name, CONFIGS[name], args, Path(tmp)))
            report["runs"].append(result)
            o = result["overall"]
            print(f"{name}: {o['requests']} requests in {result['duration_s']} s = {o['per_second']}/s, "
                  f"p50 {o['p50_ms']} ms, p99 {o['p99_ms']} ms, errors {result['errors']}, "
                  f"enrolled {result['enrolled_ok']} (missing afterwards: {result['enrolled_missing_after']}), "
                  f"mean batch {result['server_batching_one_worker']['mean_batch']}, "
                  f"load avg {result['load_average_1min']['mean']}", flush=True)
    rates = {r["config"]: r["overall"]["per_second"] for r in report["runs"]}
    if rates.get("batch1"):
        # Batching across requests against the same server without it, in this run, as a ratio.
        report["throughput_vs_batch1"] = {n: round(v / rates["batch1"], 2) for n, v in rates.items()}
        print("requests/s relative to batch1:", report["throughput_vs_batch1"])
    print(f"saved {save_result('service_load', report, out=args.out)}")
    return 0 if all(r["errors"] == 0 and r["enrolled_missing_after"] == 0 for r in report["runs"]) else 1


if __name__ == "__main__":
    sys.exit(main())
