"""`aesop-bench eval`: evaluate a model, or a folder of SR results, on benchmark sets."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..errors import AesopBenchError, ConfigError
from ..protocols import DEFAULT_PROTOCOL
from .common import add_command, check_device


def add_eval(sub) -> None:
    e = add_command(sub, "eval", "evaluate a model, or a folder of SR results, on benchmark sets", cmd_eval)
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
    e.add_argument("--sets", default="set5,set14",
                   help="comma-separated set names, 'all', or folders; hggt:DIR (with --sr) a multi-GT test set in "
                        "HGGT's layout (Test/GT/Test-100: images/ and labels/), each full-reference value the mean "
                        "over the image's positive GTs")
    e.add_argument("--metrics", default="psnr,ssim", help="comma-separated metric names or 'all'")
    e.add_argument("--protocol", default=DEFAULT_PROTOCOL,
                   help="paper (default: the AESOP paper's numbers), basicsr or matlab")
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
    e.add_argument("--timings", action="store_true",
                   help="also print where the time went: seconds per HR megapixel of the model and of each metric, "
                        "per set (kept in summary.json under timings, apart from the results)")
    e.add_argument("--threads", type=int, default=None,
                   help="CPU threads (default: $AESOP_BENCH_THREADS, else the cores other processes leave free)")
    e.add_argument("--batch", type=int, default=None,
                   help="images per network call, for the model and the network metrics (of one size, except "
                        "for the FID features; default: up to 16 images and 4 million HR pixels on a GPU, 1 on the "
                        "CPU)")


def cmd_eval(args) -> int:
    """`aesop-bench eval`: evaluate a model or a folder of SR images; prints one row per set."""
    if args.sets.startswith("hggt:"):
        for line in multigt_lines(args):
            print(line)
        return 0
    cfg = eval_config(args)
    if args.fetch_only:
        from ..evaluation.prepare import prefetch

        for line in prefetch(cfg):
            print(line)
        return 0
    from ..evaluation.runner import run_evaluation

    summary = run_evaluation(cfg)
    from ..distributed import ranks

    if ranks()[0] != 0:
        return 0  # under torchrun, rank 0 reports
    if args.format == "json":
        print(json.dumps(summary, indent=2))
    else:
        for line in summary_lines(cfg, summary, args.sr, args.model):
            print(line)
        if args.timings:
            from ..evaluation.timings import timing_lines

            for line in timing_lines(summary.get("timings") or {}, list(cfg.sets)):
                print(line)
    return 0


def multigt_lines(args) -> list[str]:
    """`eval --sr DIR --sets hggt:ROOT`: the folder's images against each image's positive GTs (HGGT's rule); the
    lines to show."""
    from ..evaluation.multigt import evaluate_multigt
    from ..metrics.registry import expand_metrics
    from ..protocols import get_protocol

    if args.sr is None or args.model is not None:
        raise ConfigError("--sets hggt:DIR evaluates a folder of SR images (--sr DIR) against the sets' positive "
                          "GTs; run the model with --save-sr on the LR images first, or give --sr")
    check_device(args.device)
    protocol = get_protocol(args.protocol, scale=args.scale, modcrop=args.modcrop, crop_border=args.crop_border)
    root = Path(args.sets[len("hggt:"):])
    out = Path(args.out) if args.out else Path("runs") / f"{Path(args.sr).resolve().name}-{protocol.name}"
    summary = evaluate_multigt(args.sr, root, expand_metrics(args.metrics), protocol, out, args.sr_suffix,
                               args.device)
    if args.format == "json":
        return [json.dumps(summary, indent=2)]
    lines = []
    for name, entry in summary["sets"].items():
        values = ", ".join(f"{m} {v:.4f}" for m, v in entry["metrics"].items())
        lines.append(f"{name} ({entry.get('n', '?')} images, each full-reference value the mean over its positive "
                     f"GTs): {values}")
    return lines + [f"results: {out / 'summary.json'}"]


def metric_options(items: list[str]) -> dict:
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


def eval_config(args: argparse.Namespace):
    """The evaluation the options ask for, as an EvalConfig (its ``out_dir`` the run folder, defaulted from the
    model's or the folder's name and the protocol)."""
    from ..evaluation.config import ModelRef, ResultFolder, build_config
    from ..models.options import RunOptions
    from ..models.zoo import short_name
    from ..protocols import get_protocol

    if (args.model is None) == (args.sr is None):
        raise ConfigError("give --model NAME (a network to run) or --sr DIR (a folder of SR images), one of them")
    check_device(args.device)
    protocol = get_protocol(args.protocol, scale=args.scale, modcrop=args.modcrop, crop_border=args.crop_border,
                            lr_source=args.lr_source, test_data=args.test_data)
    what = Path(args.sr).resolve().name if args.sr else short_name(args.model)
    out = Path(args.out) if args.out else Path("runs") / f"{what.replace('->', '-to-')}-{protocol.name}"
    source = ResultFolder(Path(args.sr), args.sr_suffix) if args.sr else ModelRef(args.model, args.arch)
    return build_config(source, args.sets, args.metrics, protocol, data_root=args.data_root, out=out,
                        run=RunOptions(device=args.device, precision=args.precision, tile=args.tile,
                                       tile_overlap=args.tile_overlap, batch=args.batch),
                        metric_options=metric_options(args.metric_option), ae=args.ae, fid_mode=args.fid_mode,
                        clipiqa_split_above=args.clipiqa_split_above, save_sr=args.save_sr,
                        download=not args.no_download, progress=not args.quiet, name=args.name, threads=args.threads)


def summary_lines(cfg, summary: dict, sr: str | None, model: str | None) -> list[str]:
    """What `eval` shows of a finished run: the protocol, one row per set, where a set's data came from, the
    images evaluated on a smaller area, and the result files."""
    from ..data.sets import display_name
    from ..evaluation.runfolder import RunFolder
    from ..report.tables import summary_table

    protocol = cfg.protocol
    shown = f"SR folder {sr}" if sr else f"model {model}"
    lines = [(f"{shown}, protocol {protocol.name} (x{protocol.scale}, modcrop "
              f"{'- (SR files define the area)' if sr else protocol.effective_modcrop}, "
              f"crop {protocol.effective_crop_border}, Y {'rounded' if protocol.y_round else 'float'})"),
             summary_table(summary, list(cfg.sets), list(cfg.metrics))]
    for s in cfg.sets:
        data = summary["sets"].get(s, {}).get("data") or {}
        if data.get("source") == "ldl" or data.get("fallback"):
            lines.append(f"{display_name(s)}: HR {data.get('hr')}; LR: {data.get('lr')}; area: {data.get('area')}" +
                         (" (fallback: LDL's test data not at hand)" if data.get("fallback") else ""))
    for s, images in summary.get("sr_folder", {}).get("cropped", {}).items():
        lines.append(f"{s}: {len(images)} image(s) evaluated on the SR's smaller area (HR cropped at the top-left): "
                     + ", ".join(images))
    folder = RunFolder(cfg.out_dir)
    lines.append(f"results: {folder.summary_file}, {folder.per_image_file}")
    return lines
