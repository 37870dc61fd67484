"""A metric's version string: the definition's version, then the tags of what else changes its numbers.

``DEFINITION[+OPTION TAGS][+w=HASHES][+PROTOCOL TAG]``: the tag of each option that changes the numbers (of
its canonical value), the hashes of the weight files where one is not the file its packaged entry publishes (a
stand-in, a file added by hand; ``w=unavailable`` where one is absent), and what of the protocol the metric
records. Every result row stores it, so that values of different definitions never mix: the version of a
metric's default options is therefore never changed by a refactoring. Torch-free (a rerun whose rows are
stored imports none); weight files are named by :func:`aesop_bench.weights.digest`.
"""

from __future__ import annotations

from pathlib import Path

from .. import weights as wm
from ..protocols import DEFAULT_PROTOCOL, Protocol, get_protocol
from .options import resolve


def version_of(spec, options: dict | None = None, protocol: Protocol | None = None) -> str:
    """The version of the metric ``spec`` (a :class:`~aesop_bench.metrics.registry.MetricSpec`) with
    ``options`` (checked and made canonical; None values: the defaults) under ``protocol`` (None: the default
    protocol)."""
    opts = resolve(spec.name, spec.options, options)
    tags = [o.tag(opts[o.name]) for o in spec.options if o.tag is not None]
    # the AE of ae_psnr is named by its option's tag
    weights = unpublished_weights_tag([n for n in spec.weights if not (n == "aesop_ae" and "ae" in opts)])
    if weights:
        tags.append(weights)
    if spec.protocol_tag is not None:
        tags.append(spec.protocol_tag(protocol or get_protocol(DEFAULT_PROTOCOL)))
    return "+".join([spec.version, *(t for t in tags if t)])


def unpublished_weights_tag(names) -> str:
    """``w=HASH-HASH`` (12 hex digits each) of the weight files when one is not the file its packaged entry
    publishes (a stand-in, a file of another manifest, a file added by hand for an entry with no published hash);
    "" when every file is the published one, ``w=unavailable`` where one is absent."""
    digests = [wm.digest(n) for n in names]
    if None in digests:
        return "w=unavailable"
    if all(wm.is_published(n, d) for n, d in zip(names, digests)):
        return ""
    return "w=" + "-".join(d[:12] for d in digests)


def weights_tag(names) -> str | None:
    """``HASH-HASH`` (12 hex digits each) of the weight files, whoever published them; None where one is absent:
    what an HR cache is named after."""
    digests = [wm.digest(n) for n in names]
    return None if None in digests else "-".join(d[:12] for d in digests)


def ae_tag(spec: str) -> str:
    """``ae=NAME:HASH``: the AE's file name (a weights name or a checkpoint path) and 12 hex digits of its hash."""
    digest = wm.digest(spec, path_ok=True)
    return f"ae={spec}:unavailable" if digest is None else f"ae={Path(spec).name}:{digest[:12]}"
