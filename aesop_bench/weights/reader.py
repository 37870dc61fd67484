"""Reading weight files without running code.

``.safetensors`` files are read with safetensors, TorchScript archives by a loader that knows only tensors,
anything else with ``torch.load(weights_only=True)``; a file that needs pickled objects is refused with an
explanation.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..errors import AesopBenchError


def read_meta(path: str | os.PathLike) -> dict:
    """The metadata (architecture, options) of a safetensors checkpoint written by the trainer; {} otherwise."""
    if Path(path).suffix != ".safetensors":
        return {}
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except Exception as exc:  # safetensors raises its own error types for truncated or foreign files
        raise AesopBenchError(f"{path}: not a readable safetensors file ({exc}); the file is damaged or is "
                              "not a checkpoint: download or export it again") from None
    out = {}
    for k, v in meta.items():
        try:
            out[k] = json.loads(v)
        except json.JSONDecodeError:
            raise AesopBenchError(f"{path}: its metadata entry {k!r} is not JSON ({v[:60]!r}); checkpoints "
                                  "written by `aesop-bench train` store JSON there: re-export the file") from None
    return out


_STORAGE_DTYPES = {"FloatStorage": "float32", "DoubleStorage": "float64", "HalfStorage": "float16",
                   "BFloat16Storage": "bfloat16", "LongStorage": "int64", "IntStorage": "int32",
                   "ShortStorage": "int16", "CharStorage": "int8", "ByteStorage": "uint8", "BoolStorage": "bool"}


class _ScriptObject:
    """Stands for a TorchScript class instance in an archive's data.pkl: it only records its attributes."""

    def __setstate__(self, state):
        self.state = state


def is_torchscript(path: str | os.PathLike) -> bool:
    import zipfile

    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as zf:
        return any(n.endswith("/data.pkl") for n in zf.namelist()) and any("/code/" in n for n in zf.namelist())


def load_torchscript_tensors(path: str | os.PathLike) -> dict:
    """The parameters and buffers of a TorchScript archive (``torch.jit.save``), as ``jit.load(...).state_dict()``
    names them, read without ``torch.jit.load``: the archive's ``data.pkl`` is unpickled with a loader that
    knows only tensors, storages and plain containers, and turns every TorchScript class into an inert record;
    its compiled code is never read."""
    import pickle
    import zipfile

    import torch

    path = Path(path)
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        root = next(n[: -len("data.pkl")] for n in names if n.endswith("/data.pkl"))
        if root + "byteorder" in names and zf.read(root + "byteorder").strip() != b"little":
            raise AesopBenchError(f"{path}: a big-endian TorchScript archive; re-save it on a little-endian machine")

        def rebuild_tensor(storage, offset, size, stride, requires_grad=False, hooks=None, metadata=None):
            return storage.as_strided(tuple(size), tuple(stride), offset)

        def rebuild_parameter(data, requires_grad=False, hooks=None, state=None):
            return data

        allowed = {("torch._utils", "_rebuild_tensor_v2"): rebuild_tensor,
                   ("torch._utils", "_rebuild_parameter"): rebuild_parameter,
                   ("torch._utils", "_rebuild_parameter_with_state"): rebuild_parameter,
                   ("collections", "OrderedDict"): dict}

        class Reader(pickle.Unpickler):
            def find_class(self, module, name):
                if module == "__torch__" or module.startswith("__torch__."):
                    return _ScriptObject
                if module == "torch" and name in _STORAGE_DTYPES:
                    return getattr(torch, _STORAGE_DTYPES[name])
                if (module, name) in allowed:
                    return allowed[(module, name)]
                raise AesopBenchError(f"{path}: the TorchScript archive refers to {module}.{name}, which is not a "
                                      "tensor or a plain container; it is not loaded")

            def persistent_load(self, pid):
                kind, dtype, key = pid[0], pid[1], pid[2]
                if kind != "storage" or not isinstance(dtype, torch.dtype):
                    raise AesopBenchError(f"{path}: unexpected storage record {pid[:2]!r} in the TorchScript archive")
                raw = bytearray(zf.read(f"{root}data/{key}"))
                return torch.frombuffer(raw, dtype=dtype) if raw else torch.empty(0, dtype=dtype)

        with zf.open(root + "data.pkl") as f:
            obj = Reader(f).load()
    out: dict = {}

    def walk(o, prefix):
        for k, v in (o.state.items() if isinstance(getattr(o, "state", None), dict) else ()):
            if isinstance(v, torch.Tensor):
                out[prefix + k] = v.clone()
            elif isinstance(v, _ScriptObject):
                walk(v, f"{prefix}{k}.")

    if not isinstance(obj, _ScriptObject):
        raise AesopBenchError(f"{path}: not a TorchScript module archive")
    walk(obj, "")
    return out


def load_state_dict(path: str | os.PathLike) -> dict:
    """Tensors from a checkpoint without unpickling code (safetensors, ``weights_only`` pickles, or the
    tensors of a TorchScript archive)."""
    import torch

    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except Exception as exc:
            raise AesopBenchError(f"{path}: not a readable safetensors file ({exc}); the file is damaged or is "
                                  "not a checkpoint: download or export it again") from None
    if is_torchscript(path):
        return load_torchscript_tensors(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError (and others) for disallowed globals
        if "weights_only" in str(exc) or "Unpickl" in type(exc).__name__ or "global" in str(exc).lower():
            raise AesopBenchError(
                f"{path}: the checkpoint contains pickled Python objects, which are never loaded (they can run "
                "code). Re-save its tensors in a trusted environment: torch.save(ckpt_state_dict, 'clean.pth') or "
                "safetensors.torch.save_file(...)."
            ) from None
        raise AesopBenchError(f"{path}: cannot read the checkpoint ({exc})") from None
