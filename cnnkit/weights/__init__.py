"""Pretrained weights: a registry of where each comes from and what builds it, and a checked local store."""

from .registry import Member, WeightSpec, get_spec, list_specs
from .store import cnnkit_home, converted_path, fetch, is_cached, load_model, load_state_dict, remove, weights_dir

__all__ = ["Member", "WeightSpec", "cnnkit_home", "converted_path", "fetch", "get_spec",
           "is_cached", "list_specs", "load_model", "load_state_dict", "remove", "weights_dir"]
