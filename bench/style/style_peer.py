"""cnnkit style against pastiche (PyPI), same machine, same run: wall time, CPU time, peak memory, final costs.

For every size, three whole commands run side by side, one thread each
(`OMP_NUM_THREADS` is inherited), so that all three see the same load:

- ``pastiche``: ``python -m pastiche --size S --num-steps N`` (its defaults otherwise);
- ``cnnkit``: ``cnnkit style ... --size S --steps N`` with pastiche's objective
  written in the course's costs (same settings, same number of steps);
- ``cnnkit-fast``: the same objective with the options given by ``--fast``
  (default: two coarse-to-fine passes, fewer full-size steps).

pastiche minimises ``0.01 mse(a_C, a_G) + sum_l 10/n_C^2 mse(gram/(n_H n_W))``,
which in the course's costs is ``alpha J_content + sum_l lambda_l J_l`` with
``alpha = 0.04`` and ``lambda_l = 40 / n_C^2`` (checked numerically on
pastiche's own loss at the start of the run: ``objective_check``).

Every output PNG is then scored by one evaluator: cnnkit's `content_cost` and
`style_cost` on cnnkit's VGG19 features (the same weights as pastiche's), against
the content photo resized to the output size (Lanczos) and the painting resized
to the same number of pixels. The figures of merit: does cnnkit-fast reach
pastiche's final total cost, and in what fraction of pastiche's wall time? And
how soon does the 300-step cnnkit run's own cost log pass pastiche's final
total (`cnnkit_reaches_pastiche_total_at`)?

    python -m bench.style.style_peer --sizes 256 512 --steps 300
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import DATA, RESULTS, ROOT, save_result
from bench.style.runs import save_photo, usage_row

STYLE_DIR = DATA / "style"
STYLE_LAYERS = ("conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1")
CONTENT_WEIGHT = 0.04  # pastiche: 0.01 * mse = 0.01 * 4 * J_content


def pastiche_lambdas() -> dict[str, float]:
    """pastiche's 10 / n_C^2 * mse of Gram / (n_H n_W) = 40 / n_C^2 * J_l (the course's layer cost)."""
    from cnnkit.style.vgg import LAYER_CHANNELS

    return {name: 40.0 / LAYER_CHANNELS[name] ** 2 for name in STYLE_LAYERS}


def objective_flags() -> list[str]:
    weights = ",".join(f"{name}={value!r}" for name, value in pastiche_lambdas().items())
    return ["--content-weight", str(CONTENT_WEIGHT), "--style-weight", "1", "--style-layer-weights", weights]


def run_all(commands: dict[str, list[str]], logs: Path) -> dict[str, dict[str, float]]:
    """Start every command at once; wall time, CPU time and peak RSS of each (os.wait4: per process)."""
    running = {}
    for name, argv in commands.items():
        out = open(logs / f"{name}.log", "w")
        running[name] = (subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT), time.perf_counter(), out)
    results: dict[str, dict[str, float]] = {}
    while running:
        pid, status, usage = os.wait4(-1, 0)
        name = next(n for n, (p, _, _) in running.items() if p.pid == pid)
        proc, started, out = running.pop(name)
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.close()
        if proc.returncode != 0:
            raise SystemExit(f"{name} failed ({proc.returncode}):\n{(logs / f'{name}.log').read_text()[-2000:]}")
        results[name] = usage_row(time.perf_counter() - started, usage)
    return results


def evaluate(output: Path, content: Path, style: Path) -> dict[str, float]:
    """The course's costs of `output` (a PNG) with pastiche's weights, by cnnkit's functions."""
    from cnnkit.images import load_image
    from cnnkit.style import content_cost, style_cost
    from cnnkit.style.imageops import fit_area, resize, to_tensor
    from cnnkit.style.vgg import load_vgg19

    vgg = load_vgg19("cpu")
    image = load_image(output)
    size = image.shape[:2]
    c = load_image(content)
    s = load_image(style)
    s = resize(s, fit_area(*s.shape[:2], size[0] * size[1]))
    lambdas = pastiche_lambdas()
    import torch

    with torch.no_grad():
        a_G = vgg(to_tensor(image), [*STYLE_LAYERS, "conv4_2"])
        a_C = vgg(to_tensor(resize(c, size)), ["conv4_2"])
        a_S = vgg(to_tensor(s), STYLE_LAYERS)
        J_content = float(content_cost(a_C["conv4_2"], a_G["conv4_2"]))
        J_style = float(style_cost(a_S, a_G, lambdas))
    return {"size": [size[1], size[0]], "J_content": J_content, "J_style": J_style,
            "alpha_J_content": CONTENT_WEIGHT * J_content, "total": CONTENT_WEIGHT * J_content + J_style}


def time_to_reach(log: Path, target: float, wall_s: float) -> dict | None:
    """When a cnnkit run's own cost log first shows a total at or below `target`.

    `wall_s` is the whole command's wall time; the log's `seconds` count from the
    start of the transfer, so the command's start-up (imports, weights, images)
    is added back. The log's costs are the run's own (before the PNG is
    rounded to 8 bits), so the evaluator's figure for the final image can differ
    slightly.
    """
    data = json.loads(log.read_text())
    startup = wall_s - data["seconds"]
    for step in data["steps"]:
        if step["total"] <= target:
            return {"step": step["step"], "pass": step.get("pass", 0),
                    "wall_s": round(startup + step["seconds"], 2)}
    return None


def objective_check(content: Path, style: Path) -> dict[str, float]:
    """pastiche's own loss of a perturbed image vs the course's costs with the mapped weights, same tensors."""
    import torch
    from pastiche.pastiche import VGG_MEAN, PasticheArtist

    from cnnkit.style import content_cost, style_cost
    from cnnkit.style.vgg import load_vgg19

    torch.manual_seed(0)
    artist = PasticheArtist(str(content), [str(style)], device="cpu", size=96)
    with torch.no_grad():
        artist.pastiche.add_(torch.randn_like(artist.pastiche) * 20)
        theirs = float(artist._calc_loss())
        mean = torch.tensor(VGG_MEAN).view(1, 3, 1, 1)

        def rgb01(bgr: torch.Tensor) -> torch.Tensor:  # pastiche's BGR minus mean, 0-255 -> RGB 0-1
            return (bgr + mean).flip(1) / 255.0

        from pastiche.pastiche import load_image as p_load

        c = rgb01(p_load(str(content), size=96))
        s = rgb01(p_load(str(style), pixels=c.shape[2] * c.shape[3]))
        g = rgb01(artist.pastiche.detach())
        vgg = load_vgg19("cpu")
        a_G = vgg(g, [*STYLE_LAYERS, "conv4_2"])
        ours = float(CONTENT_WEIGHT * content_cost(vgg(c, ["conv4_2"])["conv4_2"], a_G["conv4_2"])
                     + style_cost(vgg(s, STYLE_LAYERS), a_G, pastiche_lambdas()))
    return {"pastiche_loss": theirs, "course_costs_mapped": ours, "relative_difference": abs(ours - theirs) / theirs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--content", default="astronaut", help="scikit-image sample (default astronaut)")
    parser.add_argument("--style", default="starry_night", help="painting in ../shared/data/style")
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--fast", default="--multiscale 2 --coarse-steps 200 --steps 100",
                        help="cnnkit options of the fast run (quoted)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default=str(RESULTS / "style_peer.json"))
    parser.add_argument("--keep", help="folder to keep the output images in")
    args = parser.parse_args()

    try:
        import pastiche  # noqa: F401
    except ImportError:
        raise SystemExit("this benchmark compares with pastiche: pip install pastiche==1.6.0") from None
    style = STYLE_DIR / f"{args.style}.jpg"
    work = Path(args.keep or tempfile.mkdtemp(prefix="style_peer_"))
    work.mkdir(parents=True, exist_ok=True)
    content = save_photo(args.content, work / f"{args.content}.png")  # in a child: this one stays small

    # Phase 1: every run, spawned while this process is still small (a child's peak RSS as the
    # kernel reports it starts at its parent's high-water mark, so torch loads only afterwards).
    rows, outputs = [], {}
    for size in args.sizes:
        outs = {name: work / f"{name}-{size}.png" for name in ("pastiche", "cnnkit", "cnnkit-fast")}
        base = [sys.executable, "-m", "cnnkit.cli.main", "style", str(content), str(style), "--size", str(size),
                "--device", args.device, *objective_flags()]
        commands = {
            "pastiche": [sys.executable, "-m", "pastiche", "--device", args.device, "--size", str(size),
                         "--num-steps", str(args.steps), "--seed", "0", "--no-verbose", "-c", str(content),
                         "-s", str(style), "-o", str(outs["pastiche"])],
            "cnnkit": [*base, "--steps", str(args.steps), "-o", str(outs["cnnkit"])],
            "cnnkit-fast": [*base, *shlex.split(args.fast), "-o", str(outs["cnnkit-fast"])],
        }
        load_before = os.getloadavg()[0]
        timing = run_all(commands, work)
        row = {"size": size, "load_average_1min_before": round(load_before, 2),
               "load_average_1min_after": round(os.getloadavg()[0], 2),
               "parent_peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
               "tools": {name: {**timing[name], "command": shlex.join(["python", *commands[name][1:]])}
                         for name in commands}}
        print(json.dumps(row), flush=True)
        rows.append(row)
        outputs[size] = outs

    # Phase 2: one evaluator for every output.
    report = {"benchmark": "style_peer",
              "content": f"skimage.data.{args.content}()", "style": str(style.relative_to(ROOT.parent)),
              "steps": args.steps, "fast_options": args.fast, "objective": {
                  "alpha": CONTENT_WEIGHT, "beta": 1.0, "style_layer_weights": pastiche_lambdas(),
                  "content_layer": "conv4_2"},
              "objective_check": objective_check(content, style), "runs": rows}
    print(json.dumps(report["objective_check"]), flush=True)
    for row in rows:
        for name, tool in row["tools"].items():
            tool.update(evaluate(outputs[row["size"]][name], content, style))
        p, f, c = row["tools"]["pastiche"], row["tools"]["cnnkit-fast"], row["tools"]["cnnkit"]
        row["fast_reaches_pastiche_total"] = f["total"] <= p["total"]
        row["cnnkit_reaches_pastiche_total"] = c["total"] <= p["total"]
        for key in ("wall_s", "cpu_s", "peak_rss_mib"):
            row[f"fast_over_pastiche_{key}"] = round(f[key] / p[key], 3)
            row[f"cnnkit_over_pastiche_{key}"] = round(c[key] / p[key], 3)
        # the 300-step run, stopped in thought where it first matched pastiche's final cost
        reach = time_to_reach(outputs[row["size"]]["cnnkit"].with_suffix(".json"), p["total"], c["wall_s"])
        row["cnnkit_reaches_pastiche_total_at"] = reach
        if reach:
            row["cnnkit_reach_over_pastiche_wall_s"] = round(reach["wall_s"] / p["wall_s"], 3)
        print(json.dumps({k: v for k, v in row.items() if k != "tools"}), flush=True)
    print(f"saved {save_result('style_peer', report, out=args.out)}")


if __name__ == "__main__":
    main()
