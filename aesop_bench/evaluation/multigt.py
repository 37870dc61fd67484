"""Multi-GT evaluation on an HGGT test set: SR images against each set's human-labelled positive GTs.

HGGT's convention (``PosNegGTSR/scripts/metrics/calculate_multigt_labeled_{psnr_ssim,lpips,dists}.py``): each
full-reference metric of an SR image is the mean over the image's effective ``Positive`` GTs (the original HR
and the other enhanced GTs are not compared); the set's value is the mean over images. HGGT's scripts divide by
the number of positives, so an image with none stops them (``ZeroDivisionError``; Test-100 is built with at least
two per image): here such an image is refused before anything is computed, naming it and its labels.
No-reference metrics are computed on the SR image alone. LR-reference and distribution metrics are refused.

``root`` is an HGGT folder pair's parent: ``Test/GT/Test-100`` (with ``images/`` and ``labels/``); SR files are
matched to the sets' original images by name as ``--sr`` folders are (:func:`.folders.match_files`: HGGT's
``NAME_<suffix>.png`` works). Each value is computed with the same :class:`~aesop_bench.metrics.metric.Metric`
object as the evaluator's and stored under a digest of the SR file and of every positive GT (name and bytes):
relabelling a set, or editing one of its positive GTs, recomputes that image.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path

from ..data.hggt import MultiGTItem, read_set
from ..data.sets import list_images
from ..errors import ConfigError, InputError
from ..metrics.registry import Kind, get_spec
from .folders import match_files
from .store import MemoryStore, ResultStore


def set_name(root: Path) -> str:
    """The name an HGGT test set is stored under: ``hggt-`` and its folder's name (``hggt-test-100``)."""
    return "hggt-" + root.name.lower()


def _digest(sr_file: Path, item: MultiGTItem, cache: dict) -> str:
    """The files a value of the image depends on: the SR, and the name and bytes of each positive GT."""
    def file_hash(p: Path) -> bytes:
        if p not in cache:
            cache[p] = hashlib.sha256(p.read_bytes()).digest()
        return cache[p]

    h = hashlib.sha256(file_hash(sr_file))
    for gt in item.positives:
        h.update(f"\0{gt}\0".encode())
        h.update(file_hash(item.gts[gt]))
    return h.hexdigest()[:20]


def _pair(sr_file: Path, gt_file: Path, protocol):
    from ..data.transforms import to_rgb
    from ..imageio import read_image

    sr, gt = read_image(sr_file), read_image(gt_file)
    if protocol.grayscale == "rgb" or sr.shape[0] != gt.shape[0]:
        sr, gt = to_rgb(sr), to_rgb(gt)
    if sr.shape != gt.shape:
        raise InputError(f"{sr_file} is {sr.shape[-1]}x{sr.shape[-2]} but its GT {gt_file} is "
                         f"{gt.shape[-1]}x{gt.shape[-2]}; multi-GT evaluation compares images of one size")
    return sr, gt


def evaluate_multigt(sr: str | Path, root: str | Path, metrics: Sequence[str] = ("psnr",), protocol="paper",
                     out: str | Path | None = None, suffix: str = "", device: str = "cpu",
                     log: Callable[[str], None] | None = None) -> dict:
    """Evaluate the SR images in ``sr`` on the HGGT test set at ``root`` (see the module docstring); the summary
    (written to ``out`` with ``per_image.csv`` when given, resumable like any run folder)."""
    from ..metrics.metric import Metric
    from ..protocols import Protocol, get_protocol

    proto = protocol if isinstance(protocol, Protocol) else get_protocol(str(protocol))
    root, sr = Path(root).resolve(), Path(sr).resolve()
    kinds = {m: get_spec(m).kind for m in metrics}
    refused = [m for m, k in kinds.items() if k not in (Kind.FULL_REFERENCE, Kind.NO_REFERENCE)]
    if refused:
        raise ConfigError(f"{', '.join(refused)}: multi-GT evaluation takes full- and no-reference metrics only")
    items = read_set(root / "images", root / "labels")
    if any(k == Kind.FULL_REFERENCE for k in kinds.values()):
        none = [f"{i.name} ({', '.join(f'{g}: {lab}' for g, lab in i.labels.items())})"
                for i in items if not i.positives]
        if none:
            raise InputError(f"{root}: {len(none)} image(s) without an effective Positive GT, where HGGT's "
                             f"multi-GT mean is not defined: {'; '.join(none[:10])}")
    sr_files, _ = match_files([i.gts["original"] for i in items], list_images(sr), suffix)
    name = set_name(root)
    cache: dict = {}
    digests = {i.name: _digest(sr_files[i.gts["original"].name], i, cache) for i in items}
    model = {"name": sr.name, "identity": f"sr-folder:{sr}", "precision": "fp32", "source": "folder"}
    store = MemoryStore(model, proto.as_dict()) if out is None else ResultStore(out, model, proto.as_dict())
    ok = False
    try:
        built = {m: Metric(m, proto, device) for m in metrics}
        versions = {m: built[m].version for m in metrics}
        set_digest = hashlib.sha256("".join(digests[i.name] for i in items).encode()).hexdigest()[:20]
        store.plan_set(name, digests, set_digest, {"hggt": str(root), "sr_folder": str(sr),
                                                   "compared": "mean over each image's positive GTs"})
        for item in items:
            sr_file, digest = sr_files[item.gts["original"].name], digests[item.name]
            want = [m for m in metrics if not store.has(name, item.name, m, versions[m], digest)]
            values = {}
            for m in want:
                refs = item.positives if kinds[m] == Kind.FULL_REFERENCE else ("original",)
                scores = []
                for gt in refs:
                    s, g = _pair(sr_file, item.gts[gt], proto)
                    got = built[m](s[None], g[None]) if kinds[m] == Kind.FULL_REFERENCE else built[m](s[None])
                    scores.append(float(got[0]))
                values[m] = (sum(scores) / len(scores), versions[m])
            if values:
                store.add(name, item.name, values, digest)
                if log:
                    log(f"{name} {item.name}: " + ", ".join(f"{m} {v:.4f}" for m, (v, _) in values.items()))
        ok = True
        return store.finalize({"multigt": {"root": str(root), "rule": "mean over positive GTs (HGGT)"}},
                              versions, [name], list(versions))
    finally:
        store.close(discard_empty=not ok)
