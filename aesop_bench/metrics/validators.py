"""How to check that a weights file is what its entry says it is, before its hash is recorded and trusted.

The metrics layer is the lowest that knows every user of a weights entry: the zoo's SR networks
(:func:`aesop_bench.models.zoo.model_weights_validator`), the AESOP auto-encoder (:mod:`aesop_bench.models.ae`) and
NIQE's pristine model (:mod:`.niqe`); any other entry is checked as a readable file of tensors (the weights
cache's default).
"""

from __future__ import annotations


def weights_validator(name: str):
    """A check of a file of the weights entry ``name`` (raising where it is not one): the zoo network it belongs to
    with strict keys, the AESOP auto-encoder, NIQE's pristine model, or (None) a readable file of tensors."""
    if name == "aesop_ae":
        from ..models.ae import build_ae

        return lambda path: build_ae(str(path))
    if name == "niqe_pristine":
        from .niqe import load_pristine

        return load_pristine
    from ..models.zoo import model_weights_validator

    return model_weights_validator(name)
