"""`aesop-bench data`: list, download, verify and prepare benchmark and training sets."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from ..errors import AesopBenchError
from .common import add_command


def add_data(sub) -> None:
    d = add_command(sub, "data", "download, verify and prepare benchmark sets", cmd_data)
    d.add_argument("action", choices=["list", "download", "verify", "make-lr", "prepare-train", "extract-subimages",
                                      "fetch-test-data", "score-gts"],
                   help="list the registry; download, verify or make LR images of sets; prepare-train: the paper's "
                        "training sub-images (HR and whole-image LR) from a folder of HR images; extract-subimages: "
                        "HR sub-images only; fetch-test-data DIR: the tests' shared data folder ($AESOP_BENCH_SHARED) "
                        "built in DIR from its pinned public sources, sha256-verified; score-gts DIR: every GT of a "
                        "multi-GT training set (HGGT's Train/ layout) scored by --metric into --dst (JSON), for the "
                        "sma and smp samplers")
    d.add_argument("sets", nargs="?", default=None,
                   help="comma-separated set names or 'all' (default set5), or 'ldl' (LDL's test data, which "
                        "the paper protocol reads for five sets); prepare-train and extract-subimages: the folder of "
                        "HR images; fetch-test-data: the folder to build")
    d.add_argument("--data-root", default=None, help="folder holding the sets (default $AESOP_BENCH_DATA)")
    d.add_argument("--from", dest="source", default=None,
                   help="download ldl: an archive (file or URL) or a folder holding LDL's test sets, e.g. saved by "
                        "hand from its Baidu or OneDrive mirror (default $AESOP_BENCH_LDL_SOURCE, else LDL's Google "
                        "Drive folder through gdown)")
    d.add_argument("--scale", type=int, default=4, help="make-lr, prepare-train: the downscaling factor")
    d.add_argument("--modcrop", type=int, default=None,
                   help="make-lr: crop HR to a multiple of this (default the scale); prepare-train: default 12")
    d.add_argument("--dst", default=None, help="prepare-train, extract-subimages: output folder")
    d.add_argument("--crop", type=int, default=480, help="HR sub-image size")
    d.add_argument("--step", type=int, default=240, help="HR sub-image step")
    d.add_argument("--metric", default="musiq", help="score-gts: the no-reference metric (musiq or clipiqa)")
    d.add_argument("--device", default="cpu", help="score-gts: cpu or cuda")


def cmd_data(args) -> int:
    """`aesop-bench data ...`: list, download, verify and prepare benchmark and training sets; each action's
    lines are printed as they come, and a verification that fails exits with 1."""
    from ..paths import data_root

    root = data_root(args.data_root)
    status = 0
    for line, failed in data_action(args, root):
        print(line)
        status |= failed
    return status


def data_action(args, root: Path) -> Iterator[tuple[str, bool]]:
    """Run ``data ACTION [SETS]`` on the sets under ``root``; yields ``(line to show, failed)`` as the work goes."""
    from ..data.manage import download_set, make_lr, verify_set
    from ..data.sets import expand_sets

    action, sets = args.action, args.sets

    if action in ("prepare-train", "extract-subimages") and (sets is None or not Path(sets).is_dir()):
        raise AesopBenchError(f"data {action} needs SRC, the folder of HR images, as the positional argument "
                              f"(got {sets!r}), and --dst")
    if action == "score-gts":
        from ..train.multigt import training_items, write_scores

        if not sets or not args.dst:
            raise AesopBenchError("data score-gts needs DIR, a multi-GT training set's Train/ folder, and --dst, the "
                                  "JSON file to write")
        lines: list[str] = []
        write_scores(training_items(Path(sets)), args.metric, Path(args.dst), args.device, log=lines.append)
        yield from ((line, False) for line in lines)
        return
    if action == "fetch-test-data":
        from ..data.testdata import fetch_test_data

        if not sets:
            raise AesopBenchError("data fetch-test-data needs DIR, the folder to build the tests' shared data in")
        fetch_test_data(Path(sets).expanduser())
        return
    if action == "prepare-train":
        from ..train.data import prepare_train

        if not args.dst:
            raise AesopBenchError("prepare-train needs SRC (the HR folder, as the positional argument) and --dst")
        prepare_train(Path(sets), Path(args.dst), args.scale, args.modcrop or 12, args.crop, args.step)
        return
    if action == "extract-subimages":
        from ..train.data import extract_subimages

        if not args.dst:
            raise AesopBenchError("extract-subimages needs SRC (as the positional argument) and --dst")
        n = extract_subimages(Path(sets), Path(args.dst), args.crop, args.step)
        yield f"wrote {n} sub-images to {args.dst}", False
        return
    if action == "list":
        yield from ((line, False) for line in set_listing())
        return
    if (sets or "").lower() == "ldl":
        yield from ldl_action(action, root, args.scale, args.source)
        return
    if args.source:
        raise AesopBenchError("--from applies to `data download ldl` only")
    names = expand_sets(sets or "set5")
    if action == "download":
        for n in names:
            yield f"{n}: ready in {download_set(n, root)}", False
    elif action == "verify":
        for n in names:
            rep = verify_set(n, root)
            yield rep.line(), rep.status in ("differs", "missing")
    elif action == "make-lr":
        for n in names:
            make_lr(n, root, args.scale, args.modcrop)
    else:
        raise AesopBenchError(f"unknown data action {action!r}")


def set_listing() -> list[str]:
    """`data list`: each registered set with its folder, size, description and how its files are checked; then
    LDL's test data."""
    from ..data import ldl
    from ..data.sets import SETS, fingerprints

    lines = []
    for s in SETS.values():
        how = ("pinned public files, sha256" if fingerprints(s.name) else
               "official archive, deepinv's folder checksum" if s.archive and s.archive.folder_md5 else
               "official archive, hash recorded at first download" if s.archive else
               "by hand (no pinned public source): " + s.manual)
        lines.append(f"{s.name:12s} {s.folder:12s} {s.n_images or '?':>4} images  {s.description}; {how}")
    lines.append(f"{'ldl':12s} {ldl.FOLDER:12s}       LDL's test data (HR and LR files of "
                 f"{', '.join(ldl.LDL_NAMES.values())}): the paper protocol reads {', '.join(ldl.PAPER_SETS)} from it")
    return lines


def ldl_action(action: str, root: Path, scale: int, source: str | None) -> Iterator[tuple[str, bool]]:
    """``data download|verify ldl``: LDL's test data (aesop_bench.data.ldl); yields ``(line, failed)``."""
    from ..data import ldl

    if action == "download":
        yield f"LDL's test data: ready in {ldl.download(root, source)}", False
        return
    if action != "verify":
        raise AesopBenchError(f"data {action} ldl: only download and verify apply to LDL's test data")
    for name in ldl.LDL_NAMES:
        try:
            res = ldl.resolve_ldl(name, root, scale)
        except AesopBenchError as exc:
            yield f"{ldl.LDL_NAMES[name]}: {exc}", True
            continue
        if res is None:
            yield (f"{ldl.LDL_NAMES[name]}: not in {root / ldl.FOLDER}" +
                   (" (the paper protocol falls back to the set's own files)" if name in ldl.PAPER_SETS else ""),
                   name in ldl.PAPER_SETS)
            continue
        yield (f"{ldl.LDL_NAMES[name]}: {len(res.hr_files)} HR/LR pairs, unchanged since their hashes were "
               f"recorded ({root / ldl.RECORD})"), False
        yield "\n".join(ldl.compare_with_public(name, root)), False
