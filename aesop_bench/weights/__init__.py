"""The weights manager: a manifest of every weight file (``manifest``), a verified cache (``cache``) and
loading that never runs code (``reader``)."""

from .cache import Check, add, check, digest, download, expected_hash, forget, get, recorded_path, require
from .manifest import WeightsEntry, cache_path, entry, is_published, manifest
from .reader import is_torchscript, load_state_dict, load_torchscript_tensors, read_meta

__all__ = ["Check", "WeightsEntry", "add", "cache_path", "check", "digest", "download", "entry", "expected_hash",
           "forget", "get", "is_published", "is_torchscript", "load_state_dict", "load_torchscript_tensors",
           "manifest", "read_meta", "recorded_path", "require"]
