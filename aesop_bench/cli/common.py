"""What the commands share: how a command's parser is added (its help states each default once), the device
check, the installed version."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from ..errors import AesopBenchError


class DefaultsFormatter(argparse.HelpFormatter):
    """Every option's help says its default once: added as ``(default: X)`` where the help does not say it
    itself and the default is a value (not None, False or empty)."""

    def _get_help_string(self, action):
        text = action.help or ""
        if "default" in text.lower() or action.default in (None, False, "", [], argparse.SUPPRESS):
            return text
        if action.option_strings or action.nargs in (argparse.OPTIONAL, argparse.ZERO_OR_MORE):
            return text + " (default: %(default)s)"
        return text


def add_command(sub, name: str, help: str, handler: Callable[[argparse.Namespace], int]) -> argparse.ArgumentParser:
    """The parser of command ``name``, whose arguments its module adds; ``handler(args)`` runs it."""
    parser = sub.add_parser(name, formatter_class=DefaultsFormatter, help=help)
    parser.set_defaults(func=handler)
    return parser


def check_device(device: str, present: bool = True) -> None:
    """Refuse an unknown device, and (``present``) a CUDA device this machine does not have."""
    from ..distributed import check_device_name

    check_device_name(device)
    if present and str(device).startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise AesopBenchError(f"--device {device}: no CUDA device is available here (torch {torch.__version__}, "
                                  f"CUDA build {torch.version.cuda or 'none'}); use --device cpu")
