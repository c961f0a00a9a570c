"""Training throughput (images/s): the full step (read cached chips, augment, forward, mine, loss, backward, update).

Configurations: the small ResNet as the mining benchmark trains it (width 16,
one block per stage) and at its default size (width 32, two blocks per stage),
both on 96 px chips; end-to-end fine-tuning of dlib-resnet-v1 (150 px); and the
projection trained on precomputed embeddings. P x K = 16 x 4, semi-hard
mining, triplet loss. On CPU by default; `--device cuda` on a GPU machine.
`--people N` trains on the first N names of peopleDevTrain.txt only (a quick run).

    OMP_NUM_THREADS=1 nice -n 10 python -m bench.faces.train_throughput
    python -m bench.faces.train_throughput --device cuda --threads 8 --configs small-bench,small-default,dlib-finetune
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from bench.common import LFW, save_result
from cnnkit.cli.faces.train import read_people
from cnnkit.faces.train.dataset import IdentityDataset
from cnnkit.faces.train.loop import EmbeddingData, ImageData, TrainSettings, train
from cnnkit.faces.train.models import SmallResNet, count_parameters


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batches", type=int, default=8)
    ap.add_argument("--cache", default="/tmp/train_cache")
    ap.add_argument("--configs", default="small-bench,small-default,dlib-finetune,projection")
    ap.add_argument("--people", type=int, help="only the first N names of peopleDevTrain.txt (default all)")
    ap.add_argument("--out", help="default bench/results/train_throughput_<device>.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    people = read_people(str(LFW / "peopleDevTrain.txt"))[: args.people]
    settings = TrainSettings(loss="triplet", miner="semihard", epochs=1, batch_p=16, batch_k=4,
                             batches_per_epoch=args.batches, seed=0)
    results = {}
    for name in args.configs.split(","):
        if name.startswith("small"):
            data = IdentityDataset.load(LFW / "images", chip_size=96, cache_dir=args.cache, people=people,
                                        device=args.device)
            width, blocks = (16, (1, 1, 1, 1)) if name == "small-bench" else (32, (2, 2, 2, 2))
            model, train_data = SmallResNet(width=width, blocks=blocks), ImageData(data)
            what = f"small-resnet width {width} blocks {list(blocks)}, 96 px"
        elif name == "dlib-finetune":
            from cnnkit.faces.models import load_encoder

            data = IdentityDataset.load(LFW / "images", chip_size=150, cache_dir=args.cache, people=people,
                                        device=args.device)
            import copy

            model = copy.deepcopy(load_encoder("cpu")).requires_grad_(True)
            train_data, what = ImageData(data), "dlib-resnet-v1 end to end, 150 px"
        elif name == "projection":
            from bench.faces.train_common import lfw_embeddings, people_images

            row, emb, _ = lfw_embeddings(args.cache)   # every LFW image's embedding, cached by the other benchmarks
            rows, labels = people_images(people, row)
            model = torch.nn.Linear(128, 128, bias=False)
            train_data, what = EmbeddingData(emb[rows], labels), "linear projection on precomputed embeddings"
        else:
            raise SystemExit(f"unknown config {name}")
        # One warm-up epoch of two batches (allocations, oneDNN kernels), then the measured one.
        warm = TrainSettings(**{**vars(settings), "batches_per_epoch": 2})
        train(model, train_data, warm, out=f"/tmp/train_models/throughput-{name}", architecture=name,
              arguments={}, embedding_dim=128, device=device)
        start = time.perf_counter()
        result, _ = train(model, train_data, settings, out=f"/tmp/train_models/throughput-{name}",
                          architecture=name, arguments={}, embedding_dim=128, device=device)
        wall = time.perf_counter() - start
        results[name] = {"what": what, "parameters": count_parameters(model),
                         "images_per_second": result.images_per_second,
                         "images_per_second_wall": args.batches * 64 / wall, "batches": args.batches,
                         "batch": "16 x 4", "load_average_1min_after": round(os.getloadavg()[0], 2)}
        print(f"{name:14} {result.images_per_second:8.1f} img/s  ({what}, {count_parameters(model):,} parameters)",
              flush=True)
    report = {"what": "training throughput, full step incl. reading cached chips, augmentation, mining",
              "device": str(device), "threads": args.threads, "results": results}
    print(f"saved {save_result(f'train_throughput_{device.type}', report, out=args.out)}")


if __name__ == "__main__":
    main()
