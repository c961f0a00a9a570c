"""Peak memory of a style transfer against the estimate that refuses outputs up front.

Each size runs in its own process (a few L-BFGS steps, defaults otherwise) and
reports its peak resident memory; the estimate (cnnkit/style/memory.py) must be
above every measurement and not far above.

    python -m bench.style.style_memory [--sizes 256 512 768 1024]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

from bench.common import save_result

#: L-BFGS steps of each run (each keeps one more history pair, up to 50).
STEPS = 3

CHILD = """
import json, resource, sys
import numpy as np, skimage.data
from cnnkit.style import style_transfer
size = int(sys.argv[1])
baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
r = style_transfer(skimage.data.chelsea(), skimage.data.coffee(), size=size, steps=int(sys.argv[2]), device="cpu")
print(json.dumps({"size": list(r.sizes[-1]), "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "rss_before_mib": baseline / 1024}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 768, 1024, 1536])
    args = parser.parse_args()
    from cnnkit.style.memory import estimate_bytes
    from cnnkit.style.settings import StyleSettings

    rows = []
    for size in args.sizes:
        out = subprocess.run([sys.executable, "-c", CHILD, str(size), str(STEPS)],
                             capture_output=True, text=True, check=True)
        row = json.loads(out.stdout.strip().splitlines()[-1])
        h, w = row["size"]
        # What the refusal uses: a full L-BFGS history (50 pairs); and the same formula with the
        # pairs this short run really kept (one per step), which is what the measurement can check.
        row["estimate_mib"] = round(estimate_bytes(h, w, history=StyleSettings().history_size) / (1 << 20), 1)
        row["estimate_over_measured"] = round(row["estimate_mib"] / row["peak_rss_mib"], 2)
        used = min(STEPS, StyleSettings().history_size)
        row["estimate_same_history_mib"] = round(estimate_bytes(h, w, history=used) / (1 << 20), 1)
        row["estimate_same_history_over_measured"] = round(row["estimate_same_history_mib"] / row["peak_rss_mib"], 2)
        rows.append(row)
        print(json.dumps(row), flush=True)
        # Saved after every size: the large ones are slow on a busy machine.
        save_result("style_memory", {"benchmark": "style_memory", "runs": rows})


if __name__ == "__main__":
    main()
