"""Batches of a set's images for one network call: of one size (or any size, for networks that resize them),
within an image count and a pixel bound (:meth:`aesop_bench.models.options.RunOptions.batch_limits`). Sizes come
from the files' headers, so nothing is decoded to plan the batches."""

from __future__ import annotations


def batches(items: list, size: int, pixels: int | None = None, path=lambda item: item[0], same_size: bool = True):
    """``items`` (each naming its HR file through ``path``) in batches of at most ``size`` images and ``pixels``
    HR pixels (always one image at least), read from the files' headers: of one size each, or with
    ``same_size=False`` consecutive images of any size (for networks that resize them; a model still runs once
    per LR shape). Files whose header cannot be read go alone in a batch of one size (reading them says what is
    wrong)."""
    from ..imageio import width_height

    if size == 1:
        yield from ([item] for item in items)
        return
    if not same_size:
        group, used = [], 0
        for item in items:
            wh = width_height(path(item))
            px = wh[0] * wh[1] if wh else 0
            if group and (len(group) == size or (pixels is not None and used + px > pixels)):
                yield group
                group, used = [], 0
            group.append(item)
            used += px
        if group:
            yield group
        return
    by_size: dict = {}
    for item in items:
        by_size.setdefault(width_height(path(item)), []).append(item)
    for wh, group in by_size.items():
        n = 1 if wh is None else size if pixels is None else max(1, min(size, pixels // (wh[0] * wh[1])))
        for i in range(0, len(group), n):
            yield group[i:i + n]
