"""Training checkpoints, exported weights and the run's logs.

A checkpoint is ``ckpt/step_NNNNNNN/`` holding ``net_g.safetensors``, ``net_g_ema.safetensors``,
``net_d.safetensors`` and ``state.pt`` (step, optimiser and scheduler states, RNG states, and in real-world
training each micro-batch slot's degradation and queue generators and pair queue: tensors and plain values
only, read back with ``weights_only=True``). It is written to ``ckpt/.tmp_step_NNNNNNN/`` and renamed,
so a folder named ``step_*`` is always complete; the last N are kept. A temporary folder or file left by a
kill is removed when the run starts again (:func:`clean_partial`).
"""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn



def bare(net: nn.Module) -> nn.Module:
    """The network inside a DistributedDataParallel wrapper (the network itself otherwise)."""
    return getattr(net, "module", net)


def save_weights(net: nn.Module, path: Path, meta: dict | None = None) -> None:
    """The network's state dict as a safetensors file, written atomically with the permissions of any new file;
    equal weights and metadata give equal bytes (the metadata in key order: safetensors writes it in hash order)."""
    import struct

    from safetensors.torch import save

    from ..fileutil import atomic_write_bytes

    sd = {k: v.detach().cpu().contiguous().clone() for k, v in bare(net).state_dict().items()}
    data = save(sd, metadata={k: json.dumps(v, sort_keys=True) for k, v in sorted((meta or {}).items())})
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    if "__metadata__" in header:
        header = {"__metadata__": dict(sorted(header.pop("__metadata__").items())), **header}
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
    text += b" " * (-len(text) % 8)  # the tensors' data stays 8-byte aligned, as safetensors writes it
    atomic_write_bytes(path, struct.pack("<Q", len(text)) + text + data[8 + n:])


def seed_all(seed: int) -> None:
    """Seed torch (CPU and every CUDA device), Python and NumPy."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2 ** 32)
    random.seed(seed)


def rng_state(device: "torch.device | str | None" = None) -> dict:
    """This process's generators: torch's CPU one, the CUDA one of ``device`` (a CUDA device), Python's, NumPy's."""
    np_state = np.random.get_state()
    state = {"torch": torch.get_rng_state(), "python": list(random.getstate()[1]),
             "python_pos": random.getstate()[2] if random.getstate()[2] is not None else -1,
             "numpy_keys": torch.from_numpy(np_state[1].astype(np.int64)), "numpy_pos": int(np_state[2])}
    if device is not None and torch.device(device).type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(torch.device(device))
    return state


def set_rng_state(s: dict, device: "torch.device | str | None" = None) -> None:
    torch.set_rng_state(s["torch"])
    random.setstate((3, tuple(s["python"]), None if s["python_pos"] == -1 else s["python_pos"]))
    np.random.set_state(("MT19937", s["numpy_keys"].numpy().astype(np.uint32), s["numpy_pos"], 0, 0.0))
    if "cuda" in s and device is not None and torch.device(device).type == "cuda":
        torch.cuda.set_rng_state(s["cuda"], torch.device(device))


def restore_rng(state: dict, device=None) -> None:
    """Put torch's CPU generator (and ``device``'s CUDA one) back to ``state`` (:func:`rng_state`)."""
    torch.set_rng_state(state["torch"])
    if "cuda" in state and device is not None and torch.device(device).type == "cuda":
        torch.cuda.set_rng_state(state["cuda"], torch.device(device))


def gather_rng_states(world: int, device=None) -> list[dict]:
    """Every rank's :func:`rng_state`, in rank order (on every rank; the one state of a single process)."""
    mine = rng_state(device)
    if world == 1:
        return [mine]
    import torch.distributed as dist

    out: list = [None] * world
    dist.all_gather_object(out, mine)
    return out


def gather_to_main(obj, world: int) -> list | None:
    """Every rank's ``obj`` on rank 0, in rank order (None on the other ranks; ``[obj]`` in a single process)."""
    if world == 1:
        return [obj]
    import torch.distributed as dist

    out: list | None = [None] * world if dist.get_rank() == 0 else None
    dist.gather_object(obj, out, dst=0)
    return out


def latest(root: Path) -> Path | None:
    """The newest complete checkpoint folder under ``root``."""
    done = sorted(p for p in root.glob("step_*") if (p / "state.pt").is_file()) if root.is_dir() else []
    return done[-1] if done else None


def clean_partial(out: Path) -> list[Path]:
    """Remove what a kill can leave half-written in a run folder: ``ckpt/.tmp_step_*`` folders and ``*.tmp``
    files (exports, logs). Returns what was removed."""
    gone = []
    root = out / "ckpt"
    for p in sorted(root.glob(".tmp_step_*")) if root.is_dir() else []:
        shutil.rmtree(p, ignore_errors=True)
        gone.append(p)
    for p in [*out.glob("*.tmp"), *out.glob(".*.tmp"), *(root.glob("step_*/*.tmp") if root.is_dir() else [])]:
        p.unlink(missing_ok=True)
        gone.append(p)
    return gone


def write(root: Path, step: int, nets: dict[str, nn.Module | None], state: dict, meta: dict, keep: int) -> Path:
    """Write checkpoint ``step`` (``nets``: file stem -> network; None entries skipped) atomically and keep the
    last ``keep``."""
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step_{step:07d}"
    tmp = root / f".tmp_step_{step:07d}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    for stem, net in nets.items():
        if net is not None:
            save_weights(net, tmp / f"{stem}.safetensors", meta if stem.startswith("net_g") else None)
    torch.save(state, tmp / "state.pt")
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    for old in sorted(root.glob("step_*"))[:-max(1, keep)]:
        shutil.rmtree(old, ignore_errors=True)
    return final


DONE = "done.json"  # what has been done after a checkpoint was written: the export, the validation at its step


def completed(folder: Path) -> set[str]:
    """The tasks that follow checkpoint ``folder`` and have finished (recorded in its ``done.json``)."""
    import json

    try:
        data = json.loads((folder / DONE).read_text())
    except (OSError, ValueError):
        return set()
    return set(data) if isinstance(data, list) else set()


def mark(folder: Path, task: str) -> None:
    """Record that ``task`` (``export``, ``val``) of checkpoint ``folder`` has finished."""
    from ..fileutil import atomic_write_json

    atomic_write_json(folder / DONE, sorted(completed(folder) | {task}))


def read(folder: Path, nets: dict[str, nn.Module | None]) -> dict:
    """Load the networks of checkpoint ``folder`` in place and return its state."""
    from safetensors.torch import load_file

    for stem, net in nets.items():
        if net is not None:
            bare(net).load_state_dict(load_file(str(folder / f"{stem}.safetensors")))
    return torch.load(folder / "state.pt", map_location="cpu", weights_only=True)
