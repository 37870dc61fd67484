"""What is installed and stored: `aesop-bench metrics`, `models`, `cache` and `weights`."""

from __future__ import annotations

from collections.abc import Iterator

from ..errors import AesopBenchError
from .common import add_command


def add_metrics(sub) -> None:
    mt = add_command(sub, "metrics", "list the metrics: kind, direction, version, weights, options", cmd_metrics)
    mt.add_argument("action", choices=["list"])
    mt.add_argument("--format", choices=["table", "json"], default="table")


def add_models(sub) -> None:
    m = add_command(sub, "models", "list the model zoo", cmd_models)
    m.add_argument("action", choices=["list"])


def add_cache(sub) -> None:
    ca = add_command(sub, "cache", "the caches' sizes; clear the derived ones (SR images, features, HR sides, file "
                                   "hashes)", cmd_cache)
    ca.add_argument("action", choices=["list", "clear"], nargs="?", default="list")
    ca.add_argument("names", nargs="*", help="clear: sr, features, hr_features, hashes or all")


def add_weights(sub) -> None:
    w = add_command(sub, "weights", "list, download, verify or add weight files", cmd_weights)
    w.add_argument("action", choices=["list", "download", "verify", "add", "forget"],
                   help="list the manifest; download or verify files; add a file fetched by hand; forget the "
                        "hash recorded for an entry with no published hash (and its cached file)")
    w.add_argument("names", nargs="*", help="weights names (`weights list` shows them); add: NAME FILE")


def cmd_metrics(args) -> int:
    """`aesop-bench metrics list`: the metric registry as a table or JSON."""
    import json

    rows = metric_rows()
    print(json.dumps(rows, indent=2) if args.format == "json" else "\n".join(metric_table(rows)))
    return 0


def metric_rows() -> list[dict]:
    """One row per metric: name, kind, direction, version with its option tags, the status of the weights it
    needs, description."""
    from .. import weights as wm
    from ..metrics.registry import METRICS

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
    return rows


def metric_table(rows: list[dict]) -> list[str]:
    """``rows`` in aligned columns, then each metric's options with their defaults and values."""
    from ..metrics.registry import METRICS

    cols = ["name", "kind", "better", "version", "weights"]
    head = dict(zip(cols, ["name", "kind", "better", "version (default options)", "weights"]))
    widths = {c: max(len(r[c]) for r in [head, *rows]) for c in cols}
    lines = ["  ".join(r[c].ljust(widths[c]) for c in cols) + "  " + r.get("description", "description")
             for r in [head, *rows]]
    lines += [f"option of {name}: {o.name} (default {o.default!r}; {o.valid()}) {o.help}"
              for name, spec in METRICS.items() for o in spec.options]
    return lines


def cmd_models(args) -> int:
    """`aesop-bench models list`: the zoo."""
    from ..models.zoo import describe_models

    print(describe_models())
    return 0


def cmd_cache(args) -> int:
    """`aesop-bench cache [clear NAME|all]`: the caches' sizes and budgets, or delete what is recomputed."""
    if args.action == "list":
        print("\n".join(cache_listing()))
        return 0
    for name, size, folder in clear_caches(args.names):
        print(f"{name}: {size / 1e6:.1f} MB freed ({folder})")
    return 0


def cache_listing() -> list[str]:
    """The cache root, then each cache (and the weights and sets, which are not caches) with its size, file
    count, folder and what it holds."""
    from ..cache import CACHES, budget_bytes
    from ..paths import data_root, folder_size, home, weights_dir

    rows = [(c.name, c.holds + (f"; budget {budget_bytes(c.name) / 1e9:g} GB (${c.budget_env})" if c.budget_env
                                else ""), c.root()) for c in CACHES.values()]
    rows += [("weights", "downloaded weights (`aesop-bench weights forget` drops one)", weights_dir()),
             ("data", "benchmark sets", data_root())]
    lines = [f"cache root {home()} ($AESOP_BENCH_HOME)"]
    for name, what, folder in rows:
        size, files = folder_size(folder)
        lines.append(f"{name:12s} {size / 1e6:10.1f} MB {files:7d} files  {folder}  {what}")
    lines.append(f"{', '.join(CACHES)} are recomputed when missing: `aesop-bench cache clear NAME|all` deletes them")
    return lines


def clear_caches(names: list[str]) -> list[tuple]:
    """Delete the caches ``names`` (or ``["all"]``); returns ``(name, bytes freed, folder)`` for each. Nothing is
    deleted when a name is not a cache's."""
    import shutil

    from ..cache import CACHES
    from ..paths import folder_size

    names = list(CACHES) if names == ["all"] else names
    unknown = [n for n in names if n not in CACHES]
    if not names or unknown:
        raise AesopBenchError(f"name the caches to clear: {', '.join(CACHES)} or all"
                              + (f" ({', '.join(unknown)} is not one; weights and sets are not caches: use "
                                 "`aesop-bench weights forget`)" if unknown else ""))
    cleared = []
    for name in names:
        folder = CACHES[name].root()
        size, _ = folder_size(folder)
        shutil.rmtree(folder, ignore_errors=True)
        cleared.append((name, size, folder))
    return cleared


def cmd_weights(args) -> int:
    """`aesop-bench weights ...`: list, download, verify, add and forget weight files; `verify` exits with 1
    where a file differs from its hash."""
    status = 0
    for line, bad in weights_action(args.action, args.names or []):
        print(line)
        status |= bad
    return status


def weights_action(action: str, names: list[str]) -> Iterator[tuple[str, bool]]:
    """Run ``weights ACTION NAMES``; yields ``(line to show, a file differs from its hash)`` as the work goes."""
    from .. import weights
    from ..metrics.validators import weights_validator

    if action == "list":
        yield from ((line, False) for line in weights_listing())
        return
    unknown = [n for n in names if n not in weights.manifest()] if action != "add" else []
    if unknown:
        raise AesopBenchError(f"unknown weights {', '.join(unknown)}; `aesop-bench weights list` shows them all")
    if action == "download":
        if not names:
            raise AesopBenchError("name the weights to download, e.g. `aesop-bench weights download rrdb_psnr`; "
                                  "`aesop-bench weights list` shows them")
        for name in names:
            yield f"{name}: {weights.download(name, validate=weights_validator(name))}", False
    elif action == "verify":
        for name, e in weights.manifest().items():
            if names and name not in names:
                continue
            c = weights.check(e)
            yield f"{name:18s} {c.status:10s} {c.detail}", c.status == "mismatch"
    elif action == "add":
        if len(names) != 2:
            raise AesopBenchError("usage: aesop-bench weights add NAME FILE")
        name, file = names
        yield f"{name}: added as {weights.add(name, file, validate=weights_validator(name))}", False
    elif action == "forget":
        for name in names:
            had = weights.forget(name)
            yield (f"{name}: " + ("the recorded hash and the cached file are forgotten; the next download or add "
                                  "records a new hash" if had else "no hash was recorded")), False
    else:
        raise AesopBenchError(f"unknown weights action {action!r}")


def weights_listing() -> list[str]:
    """`weights list`: each manifest entry with its file's status, its hash's kind, file name, licence and users;
    then what the statuses mean."""
    from .. import weights
    from ..weights.cache import hash_status

    rows = [("name", "file", "hash", "file name", "licence", "used by")]
    for name, e in weights.manifest().items():
        status = weights.check(e).status
        rows.append((name, "absent" if status == "missing" else status, hash_status(e), e.file, e.licence,
                     ", ".join(e.used_by)))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[5] for r in rows]
    lines.append("file: absent = not yet downloaded. hash: pinned = published sha256; prefix = published sha256 "
                 "prefix (file name); recorded = the sha256 of the first download; first-download = to be recorded "
                 "at the first download")
    return lines
