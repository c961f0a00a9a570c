"""A reader for dlib's binary serialization and its ``dnn`` network files.

Written from the format as dlib defines it (``dlib/serialize.h``,
``dlib/float_details.h``, the tensor, layer, input and loss serializers of
``dlib/dnn``); it imports nothing from dlib.

Primitives (see `DlibReader`):

* integer: one control byte, then the magnitude in little-endian order.  The
  control byte's low 4 bits give the number of magnitude bytes (1..8) and its
  high bit the sign.  Zero is written as ``01 00``.
* bool: the ASCII byte ``'1'`` or ``'0'``.
* float / double: two dlib integers, the (signed) mantissa and then the
  exponent; the value is ``mantissa * 2**exponent``.  Exponents 32000, 32001
  and 32002 mean +inf, -inf and NaN.  (dlib's own comment says "exponent then
  mantissa", but its code, and the released model files, have the mantissa first.)  A float
  whose first byte has any of the bits 0x70 set is in dlib's older ASCII form:
  text such as ``0.25``, ``inf``, ``ninf`` or ``NaN`` ended by one space.
* string: its length as a dlib integer, then the raw bytes.
* tensor: version 2, then num_samples, k, nr, nc as dlib integers, then that
  many little-endian IEEE float32 values (row-major, NCHW).
* alias tensor (a shape used to view part of a tensor): version 1, then the
  same four sizes, no values.

Network files.  A dnn network is a chain of C++ templates, and its file is the
chain serialized outside-in, where every wrapper writes its version number and
then its sub-network *before* its own payload.  A file therefore reads:

    add_loss_layer version, loss details,
    one version integer per wrapper, outermost first,
    the input layer,
    then the payloads of the wrappers, innermost first.

The file does not record the template types, so the parser infers the wrappers
from their version numbers: 2 is a computational layer (``add_layer``), whose
payload starts with a named details record such as ``"con_4"``; 1 is a tag or
a skip layer, which write no payload at all.  The two cannot be told apart, and
neither records its id, so both come back as kind ``"tag_or_skip"``: whoever
knows the network's C++ definition must say which is which.  dlib's
``add_prev_`` likewise does not record which tag it adds.  The wrapper right
above the input is special: an add_layer there writes version 3 (or 2), a tag
version 2 (or 1).  After its details record, every add_layer also writes three
bools and three scratch tensors (empty in released files), which are skipped.

Supported: the wrappers above, the layers con_, fc_, affine_, bn_ (con and fc
modes), relu_, prelu_, leaky_relu_, sig_, htan_, mish_, gelu_, silu_,
softmax_, softmax_all_, max_pool_, avg_pool_, add_prev_, mult_prev_, concat_,
dropout_, upsample_, l2normalize_; the image and tensor input layers; the
losses loss_metric_, loss_mmod_ and the losses that store nothing.  Not
supported (a `DlibFormatError` instead, though possibly at a later offset
than the real cause, since the file is not self-describing): the ``repeat``
wrapper, files from old dlib releases whose add_layer wrote version 1, and
layers or losses not listed.
"""

from __future__ import annotations

import logging
import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DlibFormatError

__all__ = [
    "DlibFormatError",
    "DlibNetwork",
    "DlibReader",
    "LayerRecord",
    "parse_network",
]

log = logging.getLogger(__name__)

#: float_details' special exponents.
_EXP_INF, _EXP_NINF, _EXP_NAN = 32000, 32001, 32002
#: Strings longer than this are taken as a sign of a foreign or corrupt file.
_MAX_STRING = 1 << 20
_IDENTIFIER = re.compile(rb"[A-Za-z_][A-Za-z0-9_<>]*")



class DlibReader:
    """Reads dlib primitives from a byte buffer, keeping the position in `pos`."""

    def __init__(self, data: bytes | bytearray | memoryview, source: str = "<bytes>", pos: int = 0) -> None:
        self.data = memoryview(data).cast("B")
        self.source = source
        self.pos = pos

    # -- helpers ---------------------------------------------------------------------

    def error(self, message: str, offset: int | None = None) -> DlibFormatError:
        """An error naming the source and the byte offset (default: the current one)."""
        return DlibFormatError(message, source=self.source, offset=self.pos if offset is None else offset)

    @property
    def remaining(self) -> int:
        return len(self.data) - self.pos

    def at_end(self) -> bool:
        return self.pos >= len(self.data)

    def take(self, n: int, what: str) -> memoryview:
        """The next `n` bytes; raises if fewer remain."""
        if n < 0 or n > self.remaining:
            raise self.error(f"truncated: {what} needs {n} bytes, only {self.remaining} left")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    # -- primitives ------------------------------------------------------------------

    def read_byte(self, what: str = "a byte") -> int:
        """One raw byte (dlib writes char types and uint8_t this way)."""
        return self.take(1, what)[0]

    def read_int(self, what: str = "an integer", *, signed: bool = True) -> int:
        """A dlib integer: control byte (sign bit 0x80, size in the low 4 bits) + LE magnitude."""
        start = self.pos
        control = self.read_byte(what)
        size = control & 0x0F
        negative = bool(control & 0x80)
        if size == 0 or size > 8 or control & 0x70:
            raise self.error(f"bad control byte 0x{control:02x} for {what}", start)
        if negative and not signed:
            raise self.error(f"negative value for {what}, which is unsigned", start)
        value = int.from_bytes(self.take(size, what), "little")
        return -value if negative else value

    def read_bool(self, what: str = "a bool") -> bool:
        """A bool, written as ASCII '1' or '0'."""
        start = self.pos
        ch = self.read_byte(what)
        if ch == 0x31:
            return True
        if ch == 0x30:
            return False
        raise self.error(f"bad byte 0x{ch:02x} for {what} (expected '0' or '1')", start)

    def read_float(self, what: str = "a float") -> float:
        """A float or double: mantissa then exponent as dlib integers (or dlib's old ASCII form)."""
        if self.at_end():
            raise self.error(f"truncated: no bytes left for {what}")
        if self.data[self.pos] & 0x70:
            return self._read_ascii_float(what)
        mantissa = self.read_int(f"{what} (mantissa)")
        start = self.pos
        exponent = self.read_int(f"{what} (exponent)")
        if exponent == _EXP_INF:
            return math.inf
        if exponent == _EXP_NINF:
            return -math.inf
        if exponent == _EXP_NAN:
            return math.nan
        if not -(1 << 15) <= exponent < _EXP_INF:
            raise self.error(f"exponent {exponent} out of range for {what}", start)
        return math.ldexp(float(mantissa), exponent)

    def _read_ascii_float(self, what: str) -> float:
        # dlib's pre-2013 format: printed text terminated by a single space.
        start = self.pos
        end = bytes(self.data[start:start + 64]).find(b" ")
        if end < 0:
            raise self.error(f"bad or truncated {what}: neither a binary nor an ASCII float", start)
        text = bytes(self.take(end + 1, what)[:-1]).decode("ascii", "replace")
        special = {"inf": math.inf, "ninf": -math.inf, "NaN": math.nan}
        if text in special:
            return special[text]
        try:
            return float(text)
        except ValueError:
            raise self.error(f"bad ASCII float {text!r} for {what}", start) from None

    def read_string(self, what: str = "a string") -> str:
        """A std::string: its length as a dlib integer, then the bytes."""
        start = self.pos
        n = self.read_int(f"the length of {what}", signed=False)
        if n > _MAX_STRING:
            raise self.error(f"implausible length {n} for {what}", start)
        return bytes(self.take(n, what)).decode("utf-8", "replace")

    def read_tensor(self, what: str = "a tensor") -> np.ndarray:
        """A dlib tensor: version 2, sizes (n, k, nr, nc), then float32 LE values -> float32 NCHW array."""
        start = self.pos
        version = self.read_int(f"the version of {what}")
        if version != 2:
            raise self.error(f"unexpected version {version} for {what} (expected 2)", start)
        shape = tuple(self.read_int(f"a size of {what}", signed=False) for _ in range(4))
        count = math.prod(shape)
        raw = self.take(4 * count, f"the {count} values of {what} {shape}")
        return np.frombuffer(raw, dtype="<f4").astype(np.float32).reshape(shape)

    def read_alias_tensor(self, what: str = "an alias tensor") -> tuple[int, int, int, int]:
        """An alias tensor (a view's shape): version 1, then (n, k, nr, nc)."""
        start = self.pos
        version = self.read_int(f"the version of {what}")
        if version != 1:
            raise self.error(f"unexpected version {version} for {what} (expected 1)", start)
        n, k, nr, nc = (self.read_int(f"a size of {what}", signed=False) for _ in range(4))
        return n, k, nr, nc

    def peek_identifier(self) -> str | None:
        """The string at the current position if it looks like a dlib type name, else None; never moves."""
        start = self.pos
        try:
            n = self.read_int(signed=False)
            if not 1 <= n <= 256 or n > self.remaining:
                return None
            raw = bytes(self.data[self.pos:self.pos + n])
        except DlibFormatError:
            return None
        finally:
            self.pos = start
        return raw.decode("ascii") if _IDENTIFIER.fullmatch(raw) else None


# ----------------------------------------------------------------------------------------
# Network description


@dataclass
class LayerRecord:
    """One layer of a dlib network.

    `kind` is dlib's name without its version suffix ("con_", "fc_", "affine_",
    "bn_", "relu_", "max_pool_", "avg_pool_", "add_prev_", "tag_or_skip",
    "input_rgb_image_sized", "loss_metric_", ...); `version` is the string
    exactly as stored ("con_4"); `hyper` holds the hyper-parameters and
    `arrays` the float32 parameters; `offset` is where the record starts.

    Arrays by kind:

    * con_: ``weight`` (num_filters, k, nr, nc), ``bias`` (num_filters,) when
      ``hyper["has_bias"]``; padding is symmetric, as PyTorch's.
    * fc_: ``weight`` (num_inputs, num_outputs): dlib computes ``x @ weight``
      on the input flattened in (k, nr, nc) order; ``bias`` (num_outputs,).
    * affine_: ``gamma``, ``beta``: ``y = gamma * x + beta``, per channel in
      CONV mode (shape (k,)), per element in FC mode (shape (k, nr, nc)).
    * bn_: ``gamma``, ``beta``, ``running_mean``, ``running_var``; at
      inference dlib uses ``gamma * (x - mean) / sqrt(var + eps) + beta``.
    * other layers with a parameter tensor (prelu_): ``params``, flat.
    """

    kind: str
    version: str
    hyper: dict[str, Any] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    offset: int = 0


@dataclass
class DlibNetwork:
    """A parsed network: `layers` runs from the input layer (first) to the loss layer (last)."""

    source: str
    layers: list[LayerRecord]
    trailing_bytes: int = 0

    @property
    def input(self) -> LayerRecord:
        return self.layers[0]

    @property
    def loss(self) -> LayerRecord:
        return self.layers[-1]

    def of_kind(self, kind: str) -> list[LayerRecord]:
        """The layers of one kind, in input-to-output order."""
        return [layer for layer in self.layers if layer.kind == kind]


# Field lists of the simple records: (name, type) with type one of int, uint, float, bool, byte, tensor, alias.
_Fields = list[tuple[str, str]]
_POOL: _Fields = [("nr", "int"), ("nc", "int"), ("stride_y", "int"), ("stride_x", "int"),
                  ("padding_y", "int"), ("padding_x", "int")]
_MULTIPLIERS: _Fields = [("learning_rate_multiplier", "float"), ("weight_decay_multiplier", "float"),
                         ("bias_learning_rate_multiplier", "float"), ("bias_weight_decay_multiplier", "float")]
_CON: _Fields = [("params", "tensor"), ("num_filters", "int"), ("nr", "int"), ("nc", "int"),
                 ("stride_y", "int"), ("stride_x", "int"), ("padding_y", "int"), ("padding_x", "int"),
                 ("filters", "alias"), ("biases", "alias"), *_MULTIPLIERS]
_FC: _Fields = [("num_outputs", "uint"), ("num_inputs", "uint"), ("params", "tensor"), ("weights", "alias"),
                ("biases", "alias"), ("bias_mode", "int"), *_MULTIPLIERS]
_AFFINE: _Fields = [("params", "tensor"), ("gamma", "alias"), ("beta", "alias"), ("mode", "int")]
_BN: _Fields = [("params", "tensor"), ("gamma", "alias"), ("beta", "alias"), ("means", "tensor"),
                ("invstds", "tensor"), ("running_means", "tensor"), ("running_variances", "tensor"),
                ("num_updates", "uint"), ("running_stats_window_size", "uint"), *_MULTIPLIERS, ("eps", "float")]
_RGB_MEANS: _Fields = [("avg_red", "float"), ("avg_green", "float"), ("avg_blue", "float")]

#: version string -> (kind, fields).  The layers' details records.
_LAYERS: dict[str, tuple[str, _Fields]] = {
    "con_4": ("con_", _CON),
    "con_5": ("con_", [*_CON, ("use_bias", "bool")]),
    "con_6": ("con_", [*_CON, ("use_bias", "bool"), ("use_relu", "bool")]),
    "fc_2": ("fc_", _FC),
    "fc_3": ("fc_", [*_FC, ("use_bias", "bool")]),
    "affine_": ("affine_", _AFFINE),
    "affine_2": ("affine_", [*_AFFINE, ("disabled", "bool")]),
    "bn_con2": ("bn_", _BN),
    "bn_fc2": ("bn_", _BN),
    "relu_": ("relu_", []),
    "relu_2": ("relu_", [("disabled", "bool")]),
    "prelu_": ("prelu_", [("params", "tensor"), ("initial_param_value", "float")]),
    "leaky_relu_": ("leaky_relu_", [("alpha", "float")]),
    "sig_": ("sig_", []),
    "htan_": ("htan_", []),
    "mish_": ("mish_", []),
    "gelu_": ("gelu_", []),
    "silu_": ("silu_", []),
    "softmax_": ("softmax_", []),
    "softmax_all_": ("softmax_all_", []),
    "max_pool_2": ("max_pool_", _POOL),
    "avg_pool_2": ("avg_pool_", _POOL),
    "add_prev_": ("add_prev_", []),
    "mult_prev_": ("mult_prev_", []),
    "concat_": ("concat_", [("tag_count", "uint")]),
    "dropout_": ("dropout_", [("drop_rate", "float"), ("mask", "tensor")]),
    "upsample_": ("upsample_", [("scale_y", "int"), ("scale_x", "int")]),
    "l2normalize_": ("l2normalize_", [("eps", "float")]),
}

_INPUTS: dict[str, tuple[str, _Fields]] = {
    "input_rgb_image": ("input_rgb_image", _RGB_MEANS),
    "input_rgb_image_sized": ("input_rgb_image_sized", [*_RGB_MEANS, ("nr", "uint"), ("nc", "uint")]),
    "input_rgb_image_pair": ("input_rgb_image_pair", _RGB_MEANS),
    "input<matrix>": ("input<matrix>", []),
    "input<array<matrix>>": ("input<array<matrix>>", []),
    "input<array2d>": ("input<array2d>", []),
    "input_tensor": ("input_tensor", []),
    "input_grayscale_image_pyramid": ("input_grayscale_image_pyramid",
                                      [("pyramid_padding", "uint"), ("pyramid_outer_padding", "uint")]),
    "input_rgb_image_pyramid": ("input_rgb_image_pyramid", _RGB_MEANS),
    "input_rgb_image_pyramid2": ("input_rgb_image_pyramid",
                                 [*_RGB_MEANS, ("pyramid_padding", "uint"), ("pyramid_outer_padding", "uint")]),
}

#: Losses that serialize nothing but their name.
_PLAIN_LOSSES = {
    "loss_binary_hinge_", "loss_binary_log_", "loss_multiclass_log_", "loss_multiclass_log_weighted_",
    "loss_ranking_", "loss_mean_squared_", "loss_mean_squared_multioutput_", "loss_binary_log_per_pixel_",
    "loss_multiclass_log_per_pixel_", "loss_multiclass_log_per_pixel_weighted_", "loss_mean_squared_per_pixel_",
    "loss_mean_squared_per_channel_and_pixel_", "loss_dot_",
}


def _read_fields(r: DlibReader, fields: _Fields, owner: str) -> dict[str, Any]:
    readers: dict[str, Callable[[str], Any]] = {
        "int": r.read_int,
        "uint": lambda what: r.read_int(what, signed=False),
        "float": r.read_float,
        "bool": r.read_bool,
        "byte": r.read_byte,
        "tensor": r.read_tensor,
        "alias": r.read_alias_tensor,
    }
    return {name: readers[kind](f"{owner}.{name}") for name, kind in fields}


def _split_params(r: DlibReader, record: LayerRecord, offset: int) -> None:
    """Turn the raw `params` tensor and alias shapes of con_/fc_/affine_/bn_ into named arrays."""
    h, kind = record.hyper, record.kind
    has_params = "params" in h
    flat = h.pop("params").reshape(-1) if has_params else np.zeros(0, np.float32)

    def view(start: int, shape: tuple[int, ...], name: str) -> np.ndarray:
        n = math.prod(shape)
        if start + n > flat.size:
            raise r.error(f"{record.version}: parameter tensor too small for {name} {shape}", offset)
        return flat[start:start + n].reshape(shape)

    if kind == "con_":
        filters = h.pop("filters")
        h.pop("biases")
        record.arrays["weight"] = view(0, filters, "filters")  # (num_filters, k, nr, nc)
        if flat.size == math.prod(filters) + h["num_filters"]:
            record.arrays["bias"] = view(math.prod(filters), (h["num_filters"],), "biases")
        elif flat.size != math.prod(filters):
            raise r.error(f"{record.version}: {flat.size} parameters do not fit filters {filters}", offset)
        h["has_bias"] = "bias" in record.arrays
    elif kind == "fc_":
        weights = h.pop("weights")
        h.pop("biases")
        h["bias_mode"] = {0: "FC_HAS_BIAS", 1: "FC_NO_BIAS"}.get(h["bias_mode"], h["bias_mode"])
        n_in, n_out = h["num_inputs"], h["num_outputs"]
        # dlib computes output = input (N x num_inputs) @ weight (num_inputs x num_outputs).
        record.arrays["weight"] = view(0, (n_in, n_out), "weights")
        if math.prod(weights) != n_in * n_out:
            raise r.error(f"{record.version}: weight shape {weights} is not {n_in} x {n_out}", offset)
        if flat.size == (n_in + 1) * n_out:
            record.arrays["bias"] = view(n_in * n_out, (n_out,), "biases")
        h["has_bias"] = "bias" in record.arrays
    elif kind in ("affine_", "bn_"):
        gamma = h.pop("gamma")
        h.pop("beta")
        if kind == "affine_":
            h["mode"] = {0: "CONV", 1: "FC"}.get(h["mode"], h["mode"])
        else:
            h["mode"] = "CONV" if record.version == "bn_con2" else "FC"
        # CONV mode: one value per channel; FC mode: one per (k, nr, nc) element.
        shape = (gamma[1],) if h["mode"] == "CONV" else tuple(gamma[1:])
        n = math.prod(shape)
        if flat.size == 0:
            shape, n = (0,), 0  # an affine_ that was disabled keeps no parameters
        record.arrays["gamma"] = view(0, shape, "gamma")
        record.arrays["beta"] = view(n, shape, "beta")
        if kind == "bn_":
            record.arrays["running_mean"] = h.pop("running_means").reshape(shape)
            record.arrays["running_var"] = h.pop("running_variances").reshape(shape)
            del h["means"], h["invstds"]  # batch statistics of the last training step
    elif has_params:
        record.arrays["params"] = flat
    for name in [k for k, v in h.items() if isinstance(v, np.ndarray)]:
        record.arrays[name] = h.pop(name)


def _read_details(r: DlibReader, table: dict[str, tuple[str, _Fields]], role: str) -> LayerRecord:
    offset = r.pos
    version = r.read_string(f"the name of a {role}")
    if version not in table:
        raise r.error(f"unsupported or unknown {role} {version!r}", offset)
    kind, fields = table[version]
    record = LayerRecord(kind, version, _read_fields(r, fields, version), offset=offset)
    _split_params(r, record, offset)
    return record


def _read_loss(r: DlibReader) -> LayerRecord:
    offset = r.pos
    version = r.read_string("the name of the loss layer")
    if version in _PLAIN_LOSSES:
        return LayerRecord(version, version, offset=offset)
    if version == "loss_metric_":
        # This first version stored nothing; dlib then used these fixed values.
        return LayerRecord("loss_metric_", version, {"margin": 0.1, "dist_thresh": 0.75}, offset=offset)
    if version == "loss_metric_2":
        return LayerRecord("loss_metric_", version,
                           _read_fields(r, [("margin", "float"), ("dist_thresh", "float")], version), offset=offset)
    if version == "loss_mmod_":
        return LayerRecord("loss_mmod_", version, _read_mmod_options(r), offset=offset)
    raise r.error(f"unsupported or unknown loss layer {version!r}", offset)


def _read_mmod_options(r: DlibReader) -> dict[str, Any]:
    start = r.pos
    version = r.read_int("the version of mmod_options")
    if not 1 <= version <= 4:
        raise r.error(f"unexpected mmod_options version {version}", start)
    windows: list[dict[str, Any]] = []
    if version == 1:
        windows.append({"width": r.read_int("window width"), "height": r.read_int("window height"), "label": ""})
    else:
        for _ in range(r.read_int("the number of detector windows", signed=False)):
            wstart = r.pos
            wversion = r.read_int("the version of a detector window")
            if wversion not in (1, 2):
                raise r.error(f"unexpected detector window version {wversion}", wstart)
            w: dict[str, Any] = {"width": r.read_int("window width"), "height": r.read_int("window height")}
            w["label"] = r.read_string("window label") if wversion == 2 else ""
            windows.append(w)
    opts: dict[str, Any] = {"options_version": version, "detector_windows": windows}
    opts.update(_read_fields(r, [("loss_per_false_alarm", "float"), ("loss_per_missed_target", "float"),
                                 ("truth_match_iou_threshold", "float")], "mmod_options"))
    for name in ("overlaps_nms", "overlaps_ignore"):
        opts[name] = {"iou_thresh": r.read_float(f"{name}.iou_thresh"),
                      "percent_covered_thresh": r.read_float(f"{name}.percent_covered_thresh")}
    if version >= 3:
        opts["assume_image_pyramid"] = r.read_byte("assume_image_pyramid")
    if version >= 4:
        opts["use_bounding_box_regression"] = r.read_bool("use_bounding_box_regression")
        opts["bbr_lambda"] = r.read_float("bbr_lambda")
    return opts


def _skip_layer_state(r: DlibReader, owner: str, tensors: int) -> None:
    """add_layer's bookkeeping after its details: three bools, then scratch tensors (usually empty)."""
    for name in ("this_layer_setup_called", "gradient_input_is_stale", "output_and_gradient_disabled"):
        r.read_bool(f"{owner}.{name}")
    for _ in range(tensors):
        r.read_tensor(f"{owner} scratch tensor")


def parse_network(source: str | os.PathLike[str] | bytes) -> DlibNetwork:
    """Parse a dlib dnn network file (a path, or its bytes) into a `DlibNetwork`.

    Raises `DlibFormatError` (a ValueError) naming the file and byte offset when
    the data is truncated, foreign, or uses an unsupported construct.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        data, name = bytes(source), "<bytes>"
    else:
        path = Path(source)
        name = str(path)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise DlibFormatError(f"cannot read: {exc.strerror or exc}", source=name) from None
    r = DlibReader(data, name)

    start = r.pos
    try:
        loss_version = r.read_int("the loss wrapper's version")
    except DlibFormatError:
        raise r.error("not a dlib network file (it does not start with a dlib integer)", start) from None
    if loss_version != 1:
        raise r.error(f"not a dlib network file: loss wrapper version {loss_version}, expected 1", start)
    if r.peek_identifier() is None:
        raise r.error("not a dlib network file (no loss layer name after the header)")
    loss = _read_loss(r)

    # The wrappers' versions, outermost first, up to the input layer's name.
    wrappers: list[tuple[int, int]] = []  # (version, offset)
    while True:
        ident = r.peek_identifier()
        if ident is not None and ident.startswith("input"):
            break
        offset = r.pos
        version = r.read_int("a layer wrapper's version")
        if version not in (1, 2, 3):
            raise r.error(f"unexpected layer wrapper version {version} (the 'repeat' wrapper and "
                          "pre-2016 files are not supported)", offset)
        wrappers.append((version, offset))
    if not wrappers:
        raise r.error("no layers between the loss and the input layer")
    inp = _read_details(r, _INPUTS, "input layer")
    layers: list[LayerRecord] = [inp]

    # The wrapper directly over the input: add_layer (versions 2-3) or a tag (versions 1-2).
    version, offset = wrappers.pop()
    is_add_layer = version == 3 or (version == 2 and r.peek_identifier() is not None)
    if is_add_layer:
        layer = _read_details(r, _LAYERS, "layer")
        _skip_layer_state(r, layer.version, tensors=3)
        if version == 3:
            r.read_int("sample_expansion_factor")
        layers.append(layer)
    else:
        r.read_tensor("tag cached_output")
        r.read_tensor("tag grad_final")
        r.read_bool("tag gradient_input_is_stale")
        if version == 2:
            r.read_int("sample_expansion_factor")
        layers.append(LayerRecord("tag_or_skip", "tag_or_skip", offset=offset))

    for version, offset in reversed(wrappers):
        if version == 1:  # tag or skip: no payload
            layers.append(LayerRecord("tag_or_skip", "tag_or_skip", offset=offset))
        elif version == 2:
            layer = _read_details(r, _LAYERS, "layer")
            _skip_layer_state(r, layer.version, tensors=3)
            layers.append(layer)
        else:
            raise r.error(f"wrapper version {version} is only valid directly above the input layer", offset)
    layers.append(loss)

    if r.remaining:
        log.debug("%s: %d bytes after the network left unread", name, r.remaining)
    return DlibNetwork(name, layers, trailing_bytes=r.remaining)
