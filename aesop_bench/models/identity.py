"""Model identity strings: what the SR cache and the result rows of a model are keyed on.

A network's identity is ``ARCH[OPTS]-xSCALE-WEIGHTSHASH`` followed by the inference settings that change its
outputs (:func:`run_suffix`); an interpolation's is ``interp(A,B,ALPHA)``; bicubic's is a constant. Torch-free,
so that reading stored runs needs no torch.
"""

from __future__ import annotations

BICUBIC_IDENTITY = "bicubic-matlab-uint8-v1"
# the backbone family of each architecture, as the paper's tables group methods
FAMILIES = {"rrdb": "RRDB", "swinir": "SwinIR", "spsr": "RRDB"}


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
