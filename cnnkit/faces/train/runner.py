"""Train an encoder from an identity folder, end to end: what `cnnkit faces train` runs.

    report = fit(data="lfw/images", encoder="small-resnet", out="/tmp/model",
                 settings=TrainSettings(loss="triplet", miner="semihard", epochs=10),
                 val_pairs="lfw/pairsDevTest.txt", val_images="lfw/images")

`encoder` is
* ``small-resnet``: a new small ResNet trained from scratch (96 px chips by default);
* ``dlib-resnet-v1``: the pretrained dlib encoder, fine-tuned end to end, or with
  `freeze_encoder` a linear projection trained on its precomputed embeddings
  (with the binary loss and a frozen encoder only the head is trained);
* the folder of a saved encoder: training goes on from its weights.

The result is saved in the saved-encoder format (and, for the binary loss,
with `head.json`/`head.safetensors` beside it), so `Gallery(..., encoder=OUT)`,
`Gallery(..., head=OUT)` and `cnnkit faces evaluate --encoder OUT` use it.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ...errors import SettingsError
from ...runtime.device import resolve_device
from ..models import embedding_model, load_encoder
from .binary_head import save_head
from .checkpoint import save_encoder
from .dataset import IdentityDataset, Progress, default_cache_dir, image_chips
from .loop import EmbeddingData, EpochLog, ImageData, PairValidation, StepLog, TrainResult, TrainSettings, train
from .models import SmallResNet, count_parameters

log = logging.getLogger(__name__)

#: The pretrained encoder training can fine-tune, or train a projection or a head on.
DLIB_ENCODER = "dlib-resnet-v1"

SMALL_RESNET = "small-resnet"
SMALL_DEFAULTS = {"width": 32, "blocks": [2, 2, 2, 2]}


@dataclass
class FitReport:
    out: str
    architecture: str
    parameters: int
    trainable_parameters: int
    chip_size: int
    images: int
    people: int
    skipped_people: int
    skipped_images: int
    result: TrainResult
    saved_encoder: bool
    saved_head: bool

    def to_dict(self) -> dict:
        out = asdict(self)
        out["result"] = {"epochs": [asdict(e) for e in self.result.epochs],
                         "images_per_second": self.result.images_per_second,
                         "resumed_from": self.result.resumed_from}
        return out


def build_encoder(encoder: str, *, embedding_dim: int = 128, freeze_encoder: bool = False,
                  small: dict | None = None) -> tuple[nn.Module, str, dict, int]:
    """(module, architecture, arguments, chip size) for `encoder` (see the module docstring)."""
    from ..saved_encoder import is_saved_encoder, load_saved_encoder, read_config

    if encoder == SMALL_RESNET:
        if freeze_encoder:
            raise SettingsError("a new small-resnet has nothing to freeze; drop --freeze-encoder")
        arguments = {**SMALL_DEFAULTS, **(small or {}), "embedding_dim": embedding_dim}
        model: nn.Module = SmallResNet(width=int(arguments["width"]), blocks=tuple(arguments["blocks"]),
                                       embedding_dim=embedding_dim)
        return model, SMALL_RESNET, arguments, int(arguments.pop("chip_size", 96))
    if encoder == DLIB_ENCODER:
        base = load_encoder("cpu", DLIB_ENCODER)
        if freeze_encoder:
            from .models import ProjectedEncoder

            projected = ProjectedEncoder(_copy(base), 128, embedding_dim)
            return projected, "dlib-resnet-projection", {"embedding_dim": embedding_dim}, 150
        if embedding_dim != 128:
            raise SettingsError("fine-tuning dlib-resnet-v1 end to end keeps its 128-D output; "
                             "use --freeze-encoder to train a projection to another size")
        model = _copy(base)
        model.requires_grad_(True)
        return model, "dlib-resnet", {}, 150
    if is_saved_encoder(encoder):
        config = read_config(encoder)
        if freeze_encoder:
            raise SettingsError("--freeze-encoder works with dlib-resnet-v1; "
                                "a saved encoder trains on from its weights")
        model = load_saved_encoder(encoder).train()
        model.requires_grad_(True)
        if config.architecture == "dlib-resnet-projection":
            model.base.requires_grad_(False)
        return model, config.architecture, config.arguments, config.chip_size
    raise SettingsError(f"encoder must be {SMALL_RESNET!r}, {DLIB_ENCODER!r} or the folder of a saved encoder, "
                     f"got {encoder!r}")


def _copy(model: nn.Module) -> nn.Module:
    import copy

    return copy.deepcopy(model).cpu()


def base_embeddings(chips: np.ndarray, *, cache_dir: str | os.PathLike, device: torch.device,
                    on_progress: Progress | None = None, batch: int = 256) -> np.ndarray:
    """The pretrained encoder's flip-averaged embeddings of uint8 chips, cached beside them."""
    from ..recognizer import Recognizer

    name = Path(getattr(chips, "filename", "") or "chips").stem
    version = embedding_model(True, DLIB_ENCODER).version
    key = hashlib.sha256(f"{name}|{version}|{len(chips)}".encode()).hexdigest()[:16]
    file = Path(cache_dir) / f"embeddings-{key}.npy"
    if file.exists():
        return np.load(file)
    recognizer = Recognizer(DLIB_ENCODER, device=device, flip=True)
    out = np.empty((len(chips), recognizer.spec.dim), np.float32)
    for start in range(0, len(chips), batch):
        out[start:start + batch] = recognizer.embed_chips(np.array(chips[start:start + batch]))
        if on_progress:
            on_progress("encode", min(start + batch, len(chips)), len(chips))
    tmp = file.with_name(file.name + ".tmp.npy")
    np.save(tmp, out)
    os.replace(tmp, file)
    return out


def pair_validation(pairs_file: str | os.PathLike, images: str | os.PathLike, *, chip_size: int,
                    cache_dir: str | os.PathLike, frozen: bool, device: torch.device,
                    on_progress: Progress | None = None) -> PairValidation:
    """Validation inputs for a pairs file: chips (or frozen-encoder embeddings) of its images."""
    from ..evaluate import read_pairs

    pairs = read_pairs(pairs_file)
    unique = sorted({p.first for p in pairs} | {p.second for p in pairs})
    chips, ok = image_chips([Path(images) / rel for rel in unique], chip_size=chip_size, cache_dir=cache_dir,
                            on_progress=on_progress)
    row = {rel: i for i, rel in enumerate(r for r, g in zip(unique, ok) if g)}
    usable = [p for p in pairs if p.first in row and p.second in row]
    if len(usable) < len(pairs):
        log.warning("%d of %d validation pairs dropped: an image could not be read", len(pairs) - len(usable),
                    len(pairs))
    if frozen:
        inputs = torch.from_numpy(base_embeddings(chips, cache_dir=cache_dir, device=device, on_progress=on_progress))
    else:
        inputs = torch.from_numpy(np.array(chips)).permute(0, 3, 1, 2)
    return PairValidation(inputs, np.array([row[p.first] for p in usable]), np.array([row[p.second] for p in usable]),
                          np.array([p.same for p in usable]), np.array([p.fold for p in usable]),
                          name=str(pairs_file))


def fit(data: str | os.PathLike, *, encoder: str, out: str | os.PathLike, settings: TrainSettings,
        embedding_dim: int = 128, freeze_encoder: bool = False, people: Sequence[str] | None = None,
        val_pairs: str | os.PathLike | None = None, val_images: str | os.PathLike | None = None,
        chip_size: int | None = None, small: dict | None = None, cache_dir: str | os.PathLike | None = None,
        device: str | None = "cpu", resume: bool = False, on_progress: Progress | None = None,
        on_step: Callable[[StepLog], None] | None = None,
        on_epoch: Callable[[EpochLog], None] | None = None) -> FitReport:
    dev = resolve_device(device)
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    if chip_size is not None and encoder == SMALL_RESNET:
        small = {**(small or {}), "chip_size": chip_size}
    model, architecture, arguments, size = build_encoder(encoder, embedding_dim=embedding_dim,
                                                         freeze_encoder=freeze_encoder, small=small)
    if "embedding_dim" in arguments:
        embedding_dim = int(arguments["embedding_dim"])  # a saved encoder keeps its own size
    if chip_size is not None and chip_size != size:
        raise SettingsError(f"{encoder} takes {size} px chips; drop --chip-size or give {size}")
    dataset = IdentityDataset.load(data, chip_size=size, cache_dir=cache_dir, people=people, device=str(dev),
                                   on_progress=on_progress)
    frozen = architecture == "dlib-resnet-projection"
    head_only = frozen and settings.loss == "binary"
    if head_only and embedding_dim != 128:
        raise SettingsError("a binary head on the frozen dlib-resnet-v1 takes its 128-D embeddings; "
                            "drop --embedding-dim")
    if frozen:
        vectors = base_embeddings(dataset.chips, cache_dir=cache_dir, device=dev, on_progress=on_progress)
        trained: nn.Module = model.get_submodule("projection")  # a ProjectedEncoder's
        if head_only:
            trained.requires_grad_(False)  # the head alone learns; the projection stays the identity
        train_data: EmbeddingData | ImageData = EmbeddingData(vectors, dataset.labels)
    else:
        trained, train_data = model, ImageData(dataset)
    validation = None
    if val_pairs is not None:
        validation = pair_validation(val_pairs, val_images or data, chip_size=size, cache_dir=cache_dir,
                                     frozen=frozen, device=dev, on_progress=on_progress)
    result, head = train(trained, train_data, settings, out=out, architecture=architecture, arguments=arguments,
                         embedding_dim=embedding_dim, validation=validation, resume=resume, device=dev,
                         on_step=on_step, on_epoch=on_epoch)
    last_val = result.epochs[-1].validation if result.epochs else None
    extra = {"trained": {"data": str(data), "people": dataset.num_people, "images": len(dataset),
                         "settings": asdict(settings), "validation": last_val}}
    if last_val and np.isfinite(last_val.get("threshold", np.nan)):
        extra["threshold"] = last_val["threshold"]   # the gallery's default (thresholds.py reads it)
    saved_encoder = not head_only
    if saved_encoder:
        save_encoder(out, model.cpu(), architecture=architecture, arguments=arguments, embedding_dim=embedding_dim,
                     chip_size=size, extra=extra)
    if head is not None:
        spec = embedding_model(True, str(Path(out).resolve()) if saved_encoder else DLIB_ENCODER)
        save_head(head.cpu(), out, embedding_model={"encoder": spec.encoder, "version": spec.version,
                                                     "flip": spec.flip}, extra={"trained": extra["trained"]})
    n_params = count_parameters(model)
    n_trainable = sum(p.numel() for p in trained.parameters() if p.requires_grad) + (
        count_parameters(head) if head is not None else 0)
    return FitReport(out=str(out), architecture=architecture, parameters=n_params, trainable_parameters=n_trainable,
                     chip_size=size, images=len(dataset), people=dataset.num_people,
                     skipped_people=dataset.skipped_single, skipped_images=dataset.skipped_unreadable, result=result,
                     saved_encoder=saved_encoder, saved_head=head is not None)
