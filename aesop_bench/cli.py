"""The ``aesop-bench`` command line.

Each ``cmd_*`` parses its arguments, calls one function of the package and prints the result; most of the
module's length is the argument parser itself (every option with its help), kept in one place so that
``--help`` and the README can be checked against each other. Heavy imports (torch) happen inside the
commands, so that ``--help`` and a re-run whose results are all stored start fast.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from .errors import AesopBenchError, ConfigError


def _check_device(device: str, present: bool = True) -> None:
    """Refuse an unknown device, and (``present``) a CUDA device this machine does not have."""
    from .distributed import check_device_name

    check_device_name(device)
    if present and str(device).startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise AesopBenchError(f"--device {device}: no CUDA device is available here (torch {torch.__version__}, "
                                  f"CUDA build {torch.version.cuda or 'none'}); use --device cpu")


def _metric_options(items: list[str]) -> dict:
    """``["clipiqa.split_above=1000000", ...]`` -> ``{"clipiqa": {"split_above": 1000000}}`` (values read as
    YAML scalars: numbers, booleans, strings)."""
    import yaml

    out: dict = {}
    for item in items:
        key, sep, value = item.partition("=")
        metric, dot, option = key.partition(".")
        if not (sep and dot and metric and option):
            raise AesopBenchError(f"--metric-option {item!r}: write METRIC.OPTION=VALUE, e.g. "
                                  "clipiqa.split_above=1000000")
        out.setdefault(metric.strip(), {})[option.strip()] = yaml.safe_load(value)
    return out


def cmd_eval(args) -> int:
    """`aesop-bench eval`: evaluate a model or a folder of SR images; prints one row per set."""
    from .data.sets import display_name
    from .protocols import get_protocol
    from .evaluation.config import ModelRef, ResultFolder, build_config
    from .evaluation.runner import run_evaluation
    from .models.options import RunOptions
    from .models.zoo import short_name
    from .report.tables import summary_table

    if (args.model is None) == (args.sr is None):
        raise ConfigError("give --model NAME (a network to run) or --sr DIR (a folder of SR images), one of them")
    _check_device(args.device)
    protocol = get_protocol(args.protocol, scale=args.scale, modcrop=args.modcrop, crop_border=args.crop_border,
                            lr_source=args.lr_source, test_data=args.test_data)
    what = Path(args.sr).resolve().name if args.sr else short_name(args.model)
    out = Path(args.out) if args.out else Path("runs") / f"{what.replace('->', '-to-')}-{protocol.name}"
    source = ResultFolder(Path(args.sr), args.sr_suffix) if args.sr else ModelRef(args.model, args.arch)
    cfg = build_config(source, args.sets, args.metrics, protocol, data_root=args.data_root, out=out,
                       run=RunOptions(device=args.device, precision=args.precision, tile=args.tile,
                                      tile_overlap=args.tile_overlap, batch=args.batch),
                       metric_options=_metric_options(args.metric_option), ae=args.ae, fid_mode=args.fid_mode,
                       clipiqa_split_above=args.clipiqa_split_above, save_sr=args.save_sr,
                       download=not args.no_download, progress=not args.quiet, name=args.name, threads=args.threads)
    if args.fetch_only:
        from .evaluation.prepare import prefetch

        for line in prefetch(cfg):
            print(line)
        return 0
    summary = run_evaluation(cfg)
    from .distributed import ranks

    if ranks()[0] != 0:
        return 0  # under torchrun, rank 0 reports
    if args.format == "json":
        print(json.dumps(summary, indent=2))
    else:
        shown = f"SR folder {args.sr}" if args.sr else f"model {args.model}"
        print(f"{shown}, protocol {protocol.name} (x{protocol.scale}, modcrop "
              f"{'- (SR files define the area)' if args.sr else protocol.effective_modcrop}, "
              f"crop {protocol.effective_crop_border}, Y {'rounded' if protocol.y_round else 'float'})")
        print(summary_table(summary, list(cfg.sets), list(cfg.metrics)))
        for s in cfg.sets:
            data = summary["sets"].get(s, {}).get("data") or {}
            if data.get("source") == "ldl" or data.get("fallback"):
                print(f"{display_name(s)}: HR {data.get('hr')}; LR: {data.get('lr')}; area: {data.get('area')}" +
                      (" (fallback: LDL's test data not at hand)" if data.get("fallback") else ""))
        for s, images in summary.get("sr_folder", {}).get("cropped", {}).items():
            print(f"{s}: {len(images)} image(s) evaluated on the SR's smaller area (HR cropped at the top-left): "
                  + ", ".join(images))
        from .evaluation.runfolder import RunFolder

        folder = RunFolder(out)
        print(f"results: {folder.summary_file}, {folder.per_image_file}")
    return 0


def cmd_metrics(args) -> int:
    """`aesop-bench metrics list`: the metric registry as a table or JSON: name, kind, direction, version with its
    option tags, the status of the weights it needs, description; then each option with its default and values."""
    from . import weights as wm
    from .metrics.registry import METRICS

    rows = []
    for name, spec in METRICS.items():
        status = []
        for n in spec.weights:
            try:
                status.append(f"{n}:{wm.check(wm.entry(n)).status}")
            except AesopBenchError:
                status.append(f"{n}:unknown")
        version = spec.version + "".join(f"+<{o.name}>" for o in spec.options if o.tag) + \
            ("+<protocol>" if spec.protocol_tag else "")
        rows.append({"name": name, "kind": str(spec.kind), "better": "lower" if spec.lower_better else "higher",
                     "version": version, "weights": " ".join(status) or "-", "description": spec.description})
    if args.format == "json":
        print(json.dumps(rows, indent=2))
        return 0
    cols = ["name", "kind", "better", "version", "weights"]
    head = dict(zip(cols, ["name", "kind", "better", "version (default options)", "weights"]))
    widths = {c: max(len(r[c]) for r in [head, *rows]) for c in cols}
    for r in [head, *rows]:
        print("  ".join(r[c].ljust(widths[c]) for c in cols) + "  " + r.get("description", "description"))
    for name, spec in METRICS.items():
        for o in spec.options:
            print(f"option of {name}: {o.name} (default {o.default!r}; {o.valid()}) {o.help}")
    return 0


def cmd_results(args) -> int:
    """`aesop-bench results`: a run folder's per-image values as CSV, JSON or parquet."""
    from .api import load_run

    frame = load_run(args.run)
    if args.format == "parquet":
        if not args.out:
            raise AesopBenchError("--format parquet writes a binary file: give --out FILE.parquet")
        try:
            frame.attrs = {}
            frame.to_parquet(args.out, index=False)
        except ImportError as exc:
            raise AesopBenchError(f"parquet needs pyarrow: pip install pyarrow ({exc})") from None
        print(f"wrote {args.out}")
        return 0
    if args.format == "csv":
        text = frame.to_csv(index=False)
    else:  # json.dumps writes each float's shortest exact form (pandas' to_json rounds to 10 digits)
        from .evaluation.store import json_safe

        text = json.dumps(json_safe(frame.to_dict(orient="records")), indent=1, allow_nan=False) + "\n"
    if args.out:
        from .fileutil import atomic_write_text

        atomic_write_text(args.out, text)
        print(f"wrote {args.out}")
    else:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return 0


def cmd_data(args) -> int:
    """`aesop-bench data ...`: list, download, verify and prepare benchmark and training sets."""
    from .data.manage import download_set, make_lr, verify_set
    from .data.sets import SETS, expand_sets
    from .paths import data_root

    root = data_root(args.data_root)
    if args.action in ("prepare-train", "extract-subimages") and (args.sets is None or not Path(args.sets).is_dir()):
        raise AesopBenchError(f"data {args.action} needs SRC, the folder of HR images, as the positional argument "
                              f"(got {args.sets!r}), and --dst")
    if args.action == "fetch-test-data":
        from .data.testdata import fetch_test_data

        if not args.sets:
            raise AesopBenchError("data fetch-test-data needs DIR, the folder to build the tests' shared data in")
        fetch_test_data(Path(args.sets).expanduser())
        return 0
    if args.action == "prepare-train":
        from .train.data import prepare_train

        if not args.dst:
            raise AesopBenchError("prepare-train needs SRC (the HR folder, as the positional argument) and --dst")
        prepare_train(Path(args.sets), Path(args.dst), args.scale, args.modcrop or 12, args.crop, args.step)
        return 0
    if args.action == "extract-subimages":
        from .train.data import extract_subimages

        if not args.dst:
            raise AesopBenchError("extract-subimages needs SRC (as the positional argument) and --dst")
        n = extract_subimages(Path(args.sets), Path(args.dst), args.crop, args.step)
        print(f"wrote {n} sub-images to {args.dst}")
        return 0
    if args.action == "list":
        from .data import ldl

        from .data.sets import fingerprints

        for s in SETS.values():
            how = ("pinned public files, sha256" if fingerprints(s.name) else
                   "official archive, deepinv's folder checksum" if s.archive and s.archive.folder_md5 else
                   "official archive, hash recorded at first download" if s.archive else
                   "by hand (no pinned public source): " + s.manual)
            print(f"{s.name:12s} {s.folder:12s} {s.n_images or '?':>4} images  {s.description}; {how}")
        print(f"{'ldl':12s} {ldl.FOLDER:12s}       LDL's test data (HR and LR files of "
              f"{', '.join(ldl.LDL_NAMES.values())}): the paper protocol reads {', '.join(ldl.PAPER_SETS)} from it")
        return 0
    if (args.sets or "").lower() == "ldl":
        return _data_ldl(args, root)
    if args.source:
        raise AesopBenchError("--from applies to `data download ldl` only")
    names = expand_sets(args.sets or "set5")
    if args.action == "download":
        for n in names:
            print(f"{n}: ready in {download_set(n, root)}")
        return 0
    if args.action == "verify":
        status = 0
        for n in names:
            rep = verify_set(n, root)
            print(rep.line())
            status |= rep.status in ("differs", "missing")
        return status
    if args.action == "make-lr":
        for n in names:
            make_lr(n, root, args.scale, args.modcrop)
        return 0
    raise AesopBenchError(f"unknown data action {args.action!r}")


def _data_ldl(args, root) -> int:
    """``data download|verify ldl``: LDL's test data (aesop_bench.data.ldl)."""
    from .data import ldl

    if args.action == "download":
        print(f"LDL's test data: ready in {ldl.download(root, args.source)}")
        return 0
    if args.action == "verify":
        status = 0
        for name in ldl.LDL_NAMES:
            try:
                res = ldl.resolve_ldl(name, root, args.scale)
            except AesopBenchError as exc:
                print(f"{ldl.LDL_NAMES[name]}: {exc}")
                status = 1
                continue
            if res is None:
                print(f"{ldl.LDL_NAMES[name]}: not in {root / ldl.FOLDER}" +
                      (" (the paper protocol falls back to the set's own files)" if name in ldl.PAPER_SETS else ""))
                status |= name in ldl.PAPER_SETS
                continue
            print(f"{ldl.LDL_NAMES[name]}: {len(res.hr_files)} HR/LR pairs, unchanged since their hashes were "
                  f"recorded ({root / ldl.RECORD})")
            print("\n".join(ldl.compare_with_public(name, root)))
        return status
    raise AesopBenchError(f"data {args.action} ldl: only download and verify apply to LDL's test data")


def cmd_weights(args) -> int:
    """`aesop-bench weights ...`: list, download, verify, add and forget weight files."""
    from . import weights
    from .metrics.validators import weights_validator

    if args.action == "list":
        from .weights.cache import hash_status

        rows = [("name", "file", "hash", "file name", "licence", "used by")]
        for name, e in weights.manifest().items():
            status = weights.check(e).status
            rows.append((name, "absent" if status == "missing" else status, hash_status(e), e.file, e.licence,
                         ", ".join(e.used_by)))
        widths = [max(len(r[i]) for r in rows) for i in range(5)]
        for r in rows:
            print("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[5])
        print("file: absent = not yet downloaded. hash: pinned = published sha256; prefix = published sha256 "
              "prefix (file name); recorded = the sha256 of the first download; first-download = to be recorded "
              "at the first download")
        return 0
    unknown = [n for n in (args.names or []) if n not in weights.manifest()] if args.action != "add" else []
    if unknown:
        raise AesopBenchError(f"unknown weights {', '.join(unknown)}; `aesop-bench weights list` shows them all")
    if args.action == "download":
        if not args.names:
            raise AesopBenchError("name the weights to download, e.g. `aesop-bench weights download rrdb_psnr`; "
                                  "`aesop-bench weights list` shows them")
        for name in args.names:
            print(f"{name}: {weights.download(name, validate=weights_validator(name))}")
        return 0
    if args.action == "verify":
        bad = 0
        for name, e in weights.manifest().items():
            if args.names and name not in args.names:
                continue
            c = weights.check(e)
            print(f"{name:18s} {c.status:10s} {c.detail}")
            bad |= c.status == "mismatch"
        return int(bad)
    if args.action == "add":
        if len(args.names or []) != 2:
            raise AesopBenchError("usage: aesop-bench weights add NAME FILE")
        name, file = args.names
        print(f"{name}: added as {weights.add(name, file, validate=weights_validator(name))}")
        return 0
    if args.action == "forget":
        for name in args.names or []:
            had = weights.forget(name)
            print(f"{name}: " + ("the recorded hash and the cached file are forgotten; the next download or add "
                                 "records a new hash" if had else "no hash was recorded"))
        return 0
    raise AesopBenchError(f"unknown weights action {args.action!r}")


def cmd_cache(args) -> int:
    """`aesop-bench cache [clear NAME|all]`: the caches' sizes and budgets, or delete what is recomputed."""
    from .cache import CACHES, budget_bytes
    from .paths import data_root, folder_size, home, weights_dir

    if args.action == "list":
        rows = [(c.name, c.holds + (f"; budget {budget_bytes(c.name) / 1e9:g} GB (${c.budget_env})" if c.budget_env
                                    else ""), c.root()) for c in CACHES.values()]
        rows += [("weights", "downloaded weights (`aesop-bench weights forget` drops one)", weights_dir()),
                 ("data", "benchmark sets", data_root())]
        print(f"cache root {home()} ($AESOP_BENCH_HOME)")
        for name, what, folder in rows:
            size, files = folder_size(folder)
            print(f"{name:12s} {size / 1e6:10.1f} MB {files:7d} files  {folder}  {what}")
        print(f"{', '.join(CACHES)} are recomputed when missing: `aesop-bench cache clear NAME|all` deletes them")
        return 0
    names = list(CACHES) if args.names == ["all"] else args.names
    unknown = [n for n in names if n not in CACHES]
    if not names or unknown:
        raise AesopBenchError(f"name the caches to clear: {', '.join(CACHES)} or all"
                              + (f" ({', '.join(unknown)} is not one; weights and sets are not caches: use "
                                 "`aesop-bench weights forget`)" if unknown else ""))
    import shutil

    for name in names:
        folder = CACHES[name].root()
        size, _ = folder_size(folder)
        shutil.rmtree(folder, ignore_errors=True)
        print(f"{name}: {size / 1e6:.1f} MB freed ({folder})")
    return 0


def cmd_models(args) -> int:
    """`aesop-bench models list`: the zoo."""
    from .models.zoo import describe_models

    print(describe_models())
    return 0


def cmd_report(args) -> int:
    """`aesop-bench report RUN...`: tables in the paper's layouts, or the results browser (``--html``)."""
    from .data.sets import expand_sets
    from .fileutil import atomic_write_text
    from .metrics.registry import expand_metrics
    from .report.runs import load_runs
    from .report.tables import FORMATS, report

    formats = [f.strip() for f in args.format.split(",") if f.strip()]
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise AesopBenchError(f"unknown format {', '.join(unknown)}; use md, tex or csv")
    runs = load_runs(args.runs, log=lambda m: print(m, file=sys.stderr))
    table = report(runs, args.layout, expand_metrics(args.metrics) if args.metrics else None,
                   expand_sets(args.sets) if args.sets else None, args.compare_paper, args.significance,
                   args.allow_mixed)
    for f in formats:
        write, suffix = FORMATS[f]
        text = write(table, args.caption) if f == "tex" else write(table)
        if args.out is None:
            print(text)
        else:
            path = Path(args.out).with_suffix(suffix)
            atomic_write_text(path, text)
            print(f"wrote {path}")
    if args.html:
        from .paths import data_root
        from .report.site import write_site

        # the runs read again: a mixed table relabels the runs it was given
        index = write_site(load_runs(args.runs), args.html, data_root(args.data_root),
                           metrics=expand_metrics(args.metrics) if args.metrics else None,
                           sets=expand_sets(args.sets) if args.sets else None, baseline=args.baseline,
                           copy_images=args.copy_images, allow_mixed=args.allow_mixed)
        print(f"wrote {index} (open it in a browser, from disk)")
    return 0


def cmd_plot(args) -> int:
    """`aesop-bench plot pd|crops RUN...`: a perception-distortion plot or a crop sheet."""
    from .report.plots import crop_sheet, pd_plot
    from .report.runs import check_comparable, load_runs
    from .paths import data_root

    runs = load_runs(args.runs, log=lambda m: print(m, file=sys.stderr))
    if args.figure == "pd":
        check_comparable(runs, [args.x, args.y], args.allow_mixed)
        for p in pd_plot(runs, args.set, args.x, args.y, args.out or f"reports/pd_{args.set}.png", args.title,
                         args.xlabel, args.ylabel, log=lambda m: print(m, file=sys.stderr),
                         width=args.width or "column"):
            print(f"wrote {p}")
    else:
        for p in crop_sheet(runs, args.set, args.image, args.box or None, data_root(args.data_root),
                            args.out or f"reports/crops_{args.set}_{args.image}.png", width=args.width or "text"):
            print(f"wrote {p}")
    return 0


def cmd_compare(args) -> int:
    """`aesop-bench compare A B`: paired per-image statistics of two runs."""
    from .report.runs import load_runs
    from .report.stats import compare_runs

    print(compare_runs(*load_runs([args.run_a, args.run_b]), args.metric, args.allow_mixed))
    return 0


def cmd_train(args) -> int:
    """`aesop-bench train ae|sr`: train from a config, or resume a run."""
    from .train.config import load_config, resume_config
    from .train.trainer import Trainer

    if args.resume:
        cfg = resume_config(args.resume, args.opt)
        out = Path(args.resume)
    else:
        if not args.config:
            from .train.config import shipped_configs

            raise AesopBenchError(f"give --config (a YAML file or a shipped config: {', '.join(shipped_configs())}) "
                                  "or --resume RUN")
        cfg = load_config(args.config, args.opt)
        out = Path(args.out) if args.out else Path("runs") / "train" / cfg.name
    _check_device(args.device)
    if cfg.kind != args.kind:
        raise AesopBenchError(f"`aesop-bench train {args.kind}` was given a {cfg.kind} config")
    if args.ae:
        cfg.ae = args.ae
    from tqdm import tqdm

    # through the progress bar's writer: a line printed beside a live bar would be written into it
    trainer = Trainer(cfg, out, args.data_root, args.device, resume=bool(args.resume),
                      log=lambda m: tqdm.write(m, file=sys.stderr))
    trainer.fit(progress=not args.quiet)
    if trainer.main:
        print(f"done: step {trainer.step}; checkpoints in {out / 'ckpt'}")
    return 0


def cmd_reproduce(args) -> int:
    """`aesop-bench reproduce RECIPE`: fetch, evaluate and tabulate a paper table (``--dry-run``: plan)."""
    from .paths import data_root
    from .report.reproduce import grand_total, recipes_for, reproduce

    _check_device(args.device, present=not args.dry_run)  # a dry run estimates a GPU's time on any machine
    recipes = recipes_for(args.table)
    plans = []
    for recipe in recipes:
        out = Path(args.out) / recipe.name if args.out and len(recipes) > 1 else (Path(args.out) if args.out else None)
        plans.append(reproduce(recipe, args.backbone, args.device, data_root(args.data_root), out, args.dry_run,
                               not args.no_download, args.threads, not args.quiet, log=print,
                               fetch_only=args.fetch_only)["plan"])
    if args.dry_run and len(plans) > 1:
        print(grand_total(plans, args.device))
    return 0


class _FMT(argparse.HelpFormatter):
    """Every option's help says its default once: added as ``(default: X)`` where the help does not say it
    itself and the default is a value (not None, False or empty)."""

    def _get_help_string(self, action):
        text = action.help or ""
        if "default" in text.lower() or action.default in (None, False, "", [], argparse.SUPPRESS):
            return text
        if action.option_strings or action.nargs in (argparse.OPTIONAL, argparse.ZERO_OR_MORE):
            return text + " (default: %(default)s)"
        return text


def _version() -> str:
    """The installed package's version (``unknown`` when run from a tree that was not installed)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("aesop-bench")
    except PackageNotFoundError:
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="aesop-bench", description="Perceptual SR benchmark and AESOP reproduction.")
    p.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = p.add_subparsers(dest="command", required=True)

    e = sub.add_parser("eval", formatter_class=_FMT,
                       help="evaluate a model, or a folder of SR results, on benchmark sets")
    e.add_argument("--model", default=None,
                   help="zoo name (`aesop-bench models list`), checkpoint (with --arch), model card, "
                        "or interp:A,B@ALPHA")
    e.add_argument("--sr", default=None, metavar="DIR",
                   help="evaluate SR images already made: DIR/SET/ per set (or DIR itself for one set)")
    e.add_argument("--sr-suffix", default="", help="with --sr: a suffix of every SR file name after the HR name "
                                                   "(e.g. _RDN_x4)")
    e.add_argument("--name", default=None, help="the run's label in tables and plots")
    e.add_argument("--arch", default=None, help="architecture of a checkpoint given to --model: rrdb or swinir")
    e.add_argument("--precision", choices=["fp32", "bf16"], default="fp32", help="network precision (recorded)")
    e.add_argument("--tile", type=int, default=None, help="LR tile size for tiled inference of large images")
    e.add_argument("--tile-overlap", type=int, default=32, help="LR pixels shared by neighbouring tiles")
    e.add_argument("--sets", default="set5,set14", help="comma-separated set names, 'all', or folders")
    e.add_argument("--metrics", default="psnr,ssim", help="comma-separated metric names or 'all'")
    e.add_argument("--protocol", default="paper", help="paper (default: the AESOP paper's numbers), basicsr or matlab")
    e.add_argument("--scale", type=int, default=None, help="upscaling factor (default: the protocol's, 4)")
    e.add_argument("--modcrop", type=int, default=None,
                   help="crop HR to a multiple of this (default: the protocol's: 12 under paper for the sets read "
                        "from their own files, the scale under basicsr and matlab)")
    e.add_argument("--crop-border", type=int, default=None,
                   help="border cropped before PSNR/SSIM (default: the protocol's, the scale)")
    e.add_argument("--lr-source", choices=["make", "folder"], default=None,
                   help="make LR with MATLAB bicubic (default) or read the set's LR folder")
    e.add_argument("--test-data", choices=["own", "ldl"], default=None,
                   help="ldl: Set14, Manga109, General100, Urban100 and DIV2K-val from LDL's HR and LR files (the "
                        "paper protocol's default); own: every set from its own files")
    e.add_argument("--data-root", default=None, help="folder holding the sets (default $AESOP_BENCH_DATA)")
    e.add_argument("--out", default=None, help="results folder (default runs/MODEL-PROTOCOL or runs/DIR-PROTOCOL)")
    e.add_argument("--device", default="cpu", help="cpu or cuda")
    e.add_argument("--save-sr", action="store_true", help="also write SR images to OUT/sr/SET/")
    e.add_argument("--no-download", action="store_true",
                   help="download nothing, neither sets nor weights; a missing file is an error naming it")
    e.add_argument("--fetch-only", action="store_true",
                   help="download and verify every set and weight file this evaluation needs, print their total "
                        "size, compute nothing (then run it with --no-download, e.g. on nodes without internet)")
    e.add_argument("--ae", default=None, help="auto-encoder of ae_psnr: weights name or checkpoint (default aesop_ae)")
    e.add_argument("--clipiqa-split-above", type=int, default=None,
                   help="score images with more pixels than this by quadrants in clipiqa (the paper: DRealSR)")
    e.add_argument("--metric-option", action="append", default=[], metavar="METRIC.OPTION=VALUE",
                   help="an option of one metric in its own name (repeatable; `aesop-bench metrics list` shows "
                        "them), e.g. clipiqa.split_above=1000000")
    e.add_argument("--fid-mode", choices=["legacy_pytorch", "clean"], default=None,
                   help="FID/pFID features: pytorch-fid as the LDL/AESOP scripts (default: legacy_pytorch) or "
                        "clean-fid")
    e.add_argument("--format", choices=["table", "json"], default="table")
    e.add_argument("--quiet", action="store_true", help="no progress bar")
    e.add_argument("--threads", type=int, default=None,
                   help="CPU threads (default: $AESOP_BENCH_THREADS, else the cores other processes leave free)")
    e.add_argument("--batch", type=int, default=None,
                   help="images per network call, for the model and the network metrics (of one size, except "
                        "for the FID features; default: up to 16 images and 4 million HR pixels on a GPU, 1 on the "
                        "CPU)")
    e.set_defaults(func=cmd_eval)

    d = sub.add_parser("data", formatter_class=_FMT,
                       help="download, verify and prepare benchmark sets")
    d.add_argument("action", choices=["list", "download", "verify", "make-lr", "prepare-train", "extract-subimages",
                                      "fetch-test-data"],
                   help="list the registry; download, verify or make LR images of sets; prepare-train: the paper's "
                        "training sub-images (HR and whole-image LR) from a folder of HR images; extract-subimages: "
                        "HR sub-images only; fetch-test-data DIR: the tests' shared data folder ($AESOP_BENCH_SHARED) "
                        "built in DIR from its pinned public sources, sha256-verified")
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
    d.set_defaults(func=cmd_data)

    t = sub.add_parser("train", formatter_class=_FMT,
                       help="AE pretraining (ae) or SR training (sr)")
    t.add_argument("kind", choices=["ae", "sr"], help="the training: ae (pretrain the auto-encoder) or sr (the "
                   "config's kind)")
    t.add_argument("--config", default=None, help="YAML experiment: a file, or a shipped config by name (aesop_rrdb, "
                                                  "smoke_ae, ...)")
    t.add_argument("--opt", action="append", default=[], help="override: key.path=value (repeatable)")
    t.add_argument("--data-root", default=None, help="root of the config's data folders ($AESOP_BENCH_TRAIN_DATA)")
    t.add_argument("--out", default=None, help="run folder (default runs/train/NAME)")
    t.add_argument("--resume", default=None, help="continue the run in this folder where it stopped")
    t.add_argument("--ae", default=None, help="the AE of the aesop loss (weights name or checkpoint)")
    t.add_argument("--device", default="cpu", help="cpu or cuda (under torchrun: one GPU per process)")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.set_defaults(func=cmd_train)

    r = sub.add_parser("report", formatter_class=_FMT,
                       help="tables in the paper's layouts from evaluation runs")
    r.add_argument("runs", nargs="+", help="run folders written by aesop-bench eval")
    r.add_argument("--layout", default=None, help="table1, table4, table6, table7 or generic (default: runs as "
                   "columns, with --metrics or every metric the runs have)")
    r.add_argument("--format", default="md", help="comma-separated: md, tex, csv")
    r.add_argument("--out", default=None, help="output path without suffix (default: print)")
    r.add_argument("--metrics", default=None, help="metrics (default: the layout's; without a layout, every "
                   "metric the runs have)")
    r.add_argument("--sets", default=None, help="sets to show (default: those in the runs, paper order)")
    r.add_argument("--compare-paper", action="store_true", help="add the paper's values and the differences")
    r.add_argument("--significance", action="store_true",
                   help="mark values not significantly different from the best (Wilcoxon, per image)")
    r.add_argument("--caption", default=None,
                   help="tex: the table's caption (default: its metrics, their better direction and its sets; '' "
                        "for none); the marks' legend and the notes follow the tabular")
    r.add_argument("--allow-mixed", action="store_true", help="label runs of different protocols instead of refusing")
    r.add_argument("--html", default=None, metavar="DIR",
                   help="also write a results browser into DIR: open DIR/index.html from disk (table, PD plot, "
                        "per-image values, a side-by-side image viewer)")
    r.add_argument("--copy-images", action="store_true",
                   help="--html: copy the images into DIR/images (else the page reads them where they are)")
    r.add_argument("--baseline", default=None, help="--html: the run the per-image differences are taken from "
                                                    "(its label; default: the first run)")
    r.add_argument("--data-root", default=None, help="--html: folder holding the sets, for the HR images (default "
                                                     "$AESOP_BENCH_DATA)")
    r.set_defaults(func=cmd_report)

    rp = sub.add_parser("reproduce", formatter_class=_FMT,
                        help="recompute a table of the paper, side by side with its numbers")
    rp.add_argument("table", help="table1, table4, table6, table7, table9, all, or a recipe YAML file")
    rp.add_argument("--backbone", default=None, help="only the models of this backbone (rrdb or swinir)")
    rp.add_argument("--device", default="cpu", help="cpu or cuda")
    rp.add_argument("--data-root", default=None, help="folder holding the sets (default $AESOP_BENCH_DATA)")
    rp.add_argument("--out", default=None, help="output folder (default reports/reproduce/TABLE[-BACKBONE])")
    rp.add_argument("--dry-run", action="store_true",
                    help="list what would be downloaded and computed, with sizes and a time estimate; do nothing")
    rp.add_argument("--no-download", action="store_true", help="stop instead of downloading missing files")
    rp.add_argument("--fetch-only", action="store_true",
                    help="download and verify every set and weight file of the table, compute nothing")
    rp.add_argument("--threads", type=int, default=None, help="CPU threads (see eval --threads)")
    rp.add_argument("--quiet", action="store_true", help="no progress bars")
    rp.set_defaults(func=cmd_reproduce)

    pl = sub.add_parser("plot", formatter_class=_FMT,
                       help="perception-distortion plots and visual comparison sheets")
    pl.add_argument("figure", choices=["pd", "crops"], help="pd: perception-distortion plot; crops: a crop sheet")
    pl.add_argument("runs", nargs="+", help="run folders written by aesop-bench eval")
    pl.add_argument("--set", required=True, help="the set to plot")
    pl.add_argument("--x", default="lpips", help="pd: the metric on the x axis")
    pl.add_argument("--y", default="psnr", help="pd: the metric on the y axis")
    pl.add_argument("--title", default=None, help="pd: the title (default: Perception-distortion, SET)")
    pl.add_argument("--xlabel", default=None, help="pd: the x axis label (default: the metric with its arrow)")
    pl.add_argument("--ylabel", default=None, help="pd: the y axis label (default: the metric with its arrow)")
    pl.add_argument("--image", default=None, help="crops: image name (file stem)")
    pl.add_argument("--box", default=None, help="crops: x,y,width,height in HR pixels (default: a centre crop)")
    pl.add_argument("--data-root", default=None, help="crops: folder holding the sets (default $AESOP_BENCH_DATA)")
    pl.add_argument("--out", default=None,
                    help="output file (default reports/pd_SET.png or reports/crops_SET_IMAGE.png)")
    pl.add_argument("--width", choices=["column", "text"], default=None,
                    help="the printed width: a paper's column (3.25 in) or its text (6.875 in); every text is 7 pt or "
                         "more at that width (default: column for pd, text for crops)")
    pl.add_argument("--allow-mixed", action="store_true", help="plot runs of different protocols anyway")
    pl.set_defaults(func=cmd_plot)

    c = sub.add_parser("compare", formatter_class=_FMT,
                       help="paired per-image comparison of two runs")
    c.add_argument("run_a", help="the first run folder (A)")
    c.add_argument("run_b", help="the second run folder (B); differences are B - A")
    c.add_argument("--metric", default=None, help="a per-image metric of both runs (default: lpips, dists, psnr or "
                                                  "ssim, the first both have)")
    c.add_argument("--allow-mixed", action="store_true", help="compare runs of different protocols anyway")
    c.set_defaults(func=cmd_compare)

    mt = sub.add_parser("metrics", formatter_class=_FMT,
                       help="list the metrics: kind, direction, version, weights, options")
    mt.add_argument("action", choices=["list"])
    mt.add_argument("--format", choices=["table", "json"], default="table")
    mt.set_defaults(func=cmd_metrics)

    rs = sub.add_parser("results", formatter_class=_FMT,
                       help="a run's per-image values as CSV, JSON or Parquet")
    rs.add_argument("run", help="a folder written by aesop-bench eval")
    rs.add_argument("--format", choices=["csv", "json", "parquet"], default="csv")
    rs.add_argument("--out", default=None, help="write to this file (default: print; parquet needs it)")
    rs.set_defaults(func=cmd_results)

    m = sub.add_parser("models", formatter_class=_FMT,
                       help="list the model zoo")
    m.add_argument("action", choices=["list"])
    m.set_defaults(func=cmd_models)

    ca = sub.add_parser("cache", formatter_class=_FMT,
                        help="the caches' sizes; clear the derived ones (SR images, features, HR sides, file hashes)")
    ca.add_argument("action", choices=["list", "clear"], nargs="?", default="list")
    ca.add_argument("names", nargs="*", help="clear: sr, features, hr_features, hashes or all")
    ca.set_defaults(func=cmd_cache)

    w = sub.add_parser("weights", formatter_class=_FMT,
                       help="list, download, verify or add weight files")
    w.add_argument("action", choices=["list", "download", "verify", "add", "forget"],
                   help="list the manifest; download or verify files; add a file fetched by hand; forget the "
                        "hash recorded for an entry with no published hash (and its cached file)")
    w.add_argument("names", nargs="*", help="weights names (`weights list` shows them); add: NAME FILE")
    w.set_defaults(func=cmd_weights)
    return p


def _parse(argv: list[str] | None) -> argparse.Namespace:
    """The arguments; an option a command does not know is refused by that command's parser, with its usage and
    the nearest options it has (argparse would print the top-level usage alone)."""
    import difflib

    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        command = sub.choices[args.command]
        known = [o for a in command._actions for o in a.option_strings]
        hints = [m for x in extra if x.startswith("-") for m in difflib.get_close_matches(x.split("=")[0], known, 1)]
        command.error(f"unrecognized arguments: {' '.join(extra)}" +
                      (f"; did you mean {', '.join(hints)}?" if hints else ""))
    return args


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    try:
        code = args.func(args)
        from .distributed import finish

        finish()  # under torchrun: the ranks end together
        return code
    except AesopBenchError as exc:
        print(f"aesop-bench: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader stopped early (`aesop-bench models list | head`): not an error
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # Python's final flush of stdout would raise again
        return 0
    except OSError as exc:
        import errno

        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            print(f"aesop-bench: error: cannot write {exc.filename or 'a file'}: {exc.strerror}. Choose a folder you "
                  "can write: --out for results, $AESOP_BENCH_HOME for caches and weights (now "
                  f"{os.environ.get('AESOP_BENCH_HOME', 'unset: ~/.cache/aesop-bench')})", file=sys.stderr)
            return 2
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        where = f" writing {exc.filename}" if exc.filename else ""
        print(f"aesop-bench: error: no space left on the device{where}. Everything stored before is kept; free "
              "some space (`aesop-bench cache` shows what the caches hold, `aesop-bench cache clear all` deletes "
              "them), or choose another --out / $AESOP_BENCH_HOME, and run the same command again: it resumes",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("aesop-bench: interrupted; stored results are kept, run the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
