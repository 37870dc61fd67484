"""`aesop-bench train ae|sr`: AE pretraining or SR training from a YAML experiment, or a run resumed."""

from __future__ import annotations

import sys
from pathlib import Path

from ..errors import AesopBenchError
from .common import add_command, check_device


def add_train(sub) -> None:
    t = add_command(sub, "train", "AE pretraining (ae) or SR training (sr)", cmd_train)
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


def cmd_train(args) -> int:
    """`aesop-bench train ae|sr`: train from a config, or resume a run."""
    cfg, out = training_config(args.kind, args.config, args.opt, args.resume, args.out, args.ae, args.device)
    from tqdm import tqdm

    from ..train.trainer import Trainer

    # through the progress bar's writer: a line printed beside a live bar would be written into it
    trainer = Trainer(cfg, out, args.data_root, args.device, resume=bool(args.resume),
                      log=lambda m: tqdm.write(m, file=sys.stderr))
    trainer.fit(progress=not args.quiet)
    if trainer.main:
        print(f"done: step {trainer.step}; checkpoints in {out / 'ckpt'}")
    return 0


def training_config(kind: str, config: str | None, opts: list[str], resume: str | None, out: str | None,
                    ae: str | None, device: str):
    """The experiment to run and its run folder: ``resume``'s own config (with ``opts``), or ``config`` with
    ``opts`` written to ``out`` (default runs/train/NAME); refused where its kind is not ``kind`` or the device is
    not at hand."""
    from ..train.config import load_config, resume_config

    if resume:
        cfg = resume_config(resume, opts)
        folder = Path(resume)
    else:
        if not config:
            from ..train.config import shipped_configs

            raise AesopBenchError(f"give --config (a YAML file or a shipped config: {', '.join(shipped_configs())}) "
                                  "or --resume RUN")
        cfg = load_config(config, opts)
        folder = Path(out) if out else Path("runs") / "train" / cfg.name
    check_device(device)
    if cfg.kind != kind:
        raise AesopBenchError(f"`aesop-bench train {kind}` was given a {cfg.kind} config")
    if ae:
        cfg.ae = ae
    return cfg, folder
