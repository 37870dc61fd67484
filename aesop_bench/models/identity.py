"""Model identity strings: what the SR cache and the result rows of a model are keyed on.

A network's identity is ``ARCH[OPTS]-xSCALE-WEIGHTSHASH`` followed by the inference settings that change its
outputs (:func:`run_suffix`); an interpolation's is ``interp(A,B,ALPHA)``; bicubic's is a constant. Torch-free,
so that reading stored runs needs no torch.
"""

from __future__ import annotations

BICUBIC_IDENTITY = "bicubic-matlab-uint8-v1"
# the backbone family of each architecture, as the paper's tables group methods
FAMILIES = {"rrdb": "RRDB", "swinir": "SwinIR", "spsr": "RRDB", "drct": "DRCT"}


# architectures whose float32 CPU outputs were measured bit-identical at 1, 2 and 4 threads
# (benchmarks/bench_thread_invariance.py --networks)
THREAD_INVARIANT = ("rrdb", "swinir")


def thread_invariant(identity: str) -> bool:
    """Whether a model's outputs are known not to depend on the CPU thread count: bicubic, a result folder, and
    the architectures of :data:`THREAD_INVARIANT` (and their interpolations) in float32.

    >>> thread_invariant("rrdb[num_feat=16,num_block=1]-x4-0123"), thread_invariant("module:Net-x4-ab")
    (True, False)
    >>> thread_invariant("interp(rrdb[]-x4-01,swinir[]-x4-23,0.3)"), thread_invariant("rrdb[]-x4-0-bf16")
    (True, False)
    """
    if identity == BICUBIC_IDENTITY or identity.startswith("sr-folder:"):
        return True
    import re

    archs = re.findall(r"(?:^|interp\(|,)([a-z_]+)\[", identity)  # a network's, or both of an interpolation's
    interp = identity.startswith("interp(")
    return bool(archs) and (len(archs) == 2 if interp else identity.startswith(archs[0] + "[")) and \
        "-bf16" not in identity and all(a in THREAD_INVARIANT for a in archs)


def run_suffix(precision: str, tile: int | None, tile_overlap: int) -> str:
    """What of the inference settings changes the outputs, appended to a network's identity."""
    return ("" if precision == "fp32" else f"-{precision}") + (f"-tile{tile}o{tile_overlap}" if tile else "")


def family(identity: str) -> str:
    """The backbone family (RRDB, SwinIR, Bicubic or other) of a model identity string.

    >>> family("interp(rrdb[]-x4-0123456789abcdef,rrdb[]-x4-fedcba9876543210,0.3)")
    'RRDB'
    """
    ident = identity[len("interp("):] if identity.startswith("interp(") else identity
    if ident == BICUBIC_IDENTITY:
        return "Bicubic"
    return FAMILIES.get(ident.split("[", 1)[0], "other")
