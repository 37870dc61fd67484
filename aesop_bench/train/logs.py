"""A training run's logs: ``train_log.csv`` (one row per logged step), ``val.csv`` (step, set, metric, value)
and TensorBoard scalars under ``tb/`` (when TensorBoard is installed).

On resume, rows and events of steps after the checkpoint (written between the checkpoint and a kill) are
dropped (:meth:`RunLog.truncate`, TensorBoard's ``purge_step``), so a resumed run's logs equal an
uninterrupted run's.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from ..fileutil import atomic_write_text

LOGS = ("train_log.csv", "val.csv")


class RunLog:
    def __init__(self, out: Path, clock):
        self.out, self.clock = out, clock  # clock.step: the current step
        self._writer = None
        self._purge_from: int | None = None

    def train(self, logs: dict) -> None:
        path = self.out / "train_log.csv"
        new = not path.is_file()
        with open(path, "a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=sorted(logs), extrasaction="ignore")
            if new:
                w.writeheader()
            w.writerow(logs)
        self.scalars("train", logs)

    def val(self, step: int, set_name: str, means: dict[str, float]) -> None:
        path = self.out / "val.csv"
        new = not path.is_file()
        with open(path, "a", newline="") as fh:
            w = csv.writer(fh)
            if new:
                w.writerow(["step", "set", "metric", "value"])
            for m, val in means.items():
                w.writerow([step, set_name, m, val])
        self.scalars(f"val_{set_name}", means)

    def scalars(self, prefix: str, values: dict) -> None:
        if self._writer is None:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # TensorBoard is optional; the CSV logs are always written
                return
            self._writer = SummaryWriter(str(self.out / "tb"), purge_step=self._purge_from)
        for k, v in values.items():
            if isinstance(v, (int, float)) and k != "step":
                self._writer.add_scalar(f"{prefix}/{k}", v, self.clock.step)
        self._writer.flush()

    def truncate(self, step: int, val_through: int | None = None) -> None:
        """Drop the rows of steps after ``step`` (validation rows after ``val_through``, default ``step``);
        TensorBoard drops its events from ``step + 1`` on."""
        self._purge_from = step + 1
        for name in LOGS:
            last = val_through if name == "val.csv" and val_through is not None else step
            path = self.out / name
            if not path.is_file():
                continue
            with open(path, newline="") as f:
                rows = list(csv.reader(f))
            if not rows or "step" not in rows[0]:
                continue
            col = rows[0].index("step")
            kept = [rows[0]] + [r for r in rows[1:] if r and _step(r[col]) is not None and _step(r[col]) <= last]
            if len(kept) != len(rows):
                buf = io.StringIO()
                csv.writer(buf).writerows(kept)
                atomic_write_text(path, buf.getvalue())


def _step(text: str) -> int | None:
    """A row's step, None for a row a kill cut short."""
    try:
        return int(float(text))
    except ValueError:
        return None
