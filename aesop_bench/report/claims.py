"""``aesop-bench verify``: numbers a results page claims for a paper, checked against the paper's own tables and
against a fresh evaluation.

A claims file (CSV; the shipped ones are named in :data:`SHIPPED`, any other is given by its path) holds one row
per claimed number::

    site_label,set,metric,claimed,table,backbone,method,train_patch,model,protocol,source
    BSD100 - 4x upscaling,bsd100,psnr,25.93,table1,SwinIR,AESOP,256,aesop_swinir,paper,"the page"

``claimed`` is the number as the page prints it (its digits say how it was rounded), ``table``..``train_patch``
the paper's cell it is a rounding of (a row of ``aesop_paper_tables.csv``), ``model`` the zoo model that
stands for that cell and ``protocol`` the protocol it is evaluated under. Each (model, protocol, set) is
evaluated with the claimed metrics through the normal evaluator, into run folders under
``OUT/verify/NAME/runs/`` (cached and resumable: a rerun computes only what is missing), and
``OUT/verify/NAME/claims.{md,csv,json}`` sets Claimed, Paper, Measured, their difference and a status side by
side; the JSON also records what the numbers came from (:func:`provenance`).

Status of a claim:

* **verified**: the measured value rounds to the claim (at the claim's printed digits) and to the paper's value
  (at the digits the paper prints), the model is the paper's own (its zoo entry's paper row is the claim's
  cell, with no doubt recorded on that match, and its weights file is the published one where a hash is
  published) and the test data is the authors' (no fallback, the set's files as pinned).
* **consistent**: the same, except that the measured value rounds to the claim only.
* **differs (by X)**: the paper's model on the authors' data gives a value that does not round to the claim;
  X is measured minus claimed.
* **not verifiable here (why)**: weights or data are missing (which, and how to get them: the notes under the
  table), or the model or the data is not the paper's. In those two cases the measured value and the difference
  are still shown, but the status is never verified nor consistent: a number from another checkpoint or other
  test files says nothing about the claim, whichever way it rounds (the JSON keeps ``rounds_to_claim``).

Rounding is decimal, half up, on the number as printed: a claim of 25.93 covers [25.925, 25.935). A measured
float is taken as its shortest decimal form (``repr``), the form it is stored and shown in, so 25.935 is
25.935 (outside the claim) and not the binary 25.93499999999999872... (inside); the paper's value keeps the
digits its table prints (``aesop_paper_tables.csv`` keeps trailing zeros: 25.930).

Length: a claims check is one command read top to bottom: the file, the rule, what to fetch, the evaluation, the
report and its provenance.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from pathlib import Path

from ..errors import AesopBenchError, ConfigError, MissingFileError

# the claims files shipped in aesop_bench/report/claims/, by name
SHIPPED = {"aesop": "aesop.csv"}
COLUMNS = ("site_label", "set", "metric", "claimed", "table", "backbone", "method", "train_patch", "model",
           "protocol", "source")
HEADER = ("Dataset", "Metric", "Claimed", "Paper", "Measured", "Δ", "Status")
_PRINTED = re.compile(r"-?\d+(\.\d+)?")

VERIFIED, CONSISTENT, DIFFERS, NOT_VERIFIABLE = "verified", "consistent", "differs", "not verifiable here"


@dataclass(frozen=True)
class Claim:
    """One claimed number: where the page shows it, the paper's cell it rounds, and what stands for that cell
    here (zoo model, protocol). ``paper`` is the paper's value as its table prints it."""

    site_label: str
    set: str
    metric: str
    claimed: str
    table: str
    backbone: str
    method: str
    train_patch: str
    model: str
    protocol: str
    source: str
    paper: str = ""

    @property
    def cell(self) -> tuple[str, str, str]:
        return self.backbone, self.method, self.train_patch


@dataclass(frozen=True)
class Claims:
    """A claims file: its name (the output folder's), where it was read from, its claims."""

    name: str
    path: str
    claims: tuple[Claim, ...]


def load_claims(name_or_path: str, paper_csv: str | Path | None = None) -> Claims:
    """A shipped claims file by name (``aesop``) or one by its path, each row checked: a registered set, metric,
    zoo model and protocol, a number as printed, and a cell the paper's tables (``paper_csv``, default the
    packaged ``aesop_paper_tables.csv``) hold."""
    if name_or_path in SHIPPED:
        from importlib import resources

        text = resources.files(__package__).joinpath("claims", SHIPPED[name_or_path]).read_text(encoding="utf-8")
        name, where = name_or_path, f"aesop_bench/report/claims/{SHIPPED[name_or_path]}"
    elif Path(name_or_path).is_file():
        path = Path(name_or_path)
        text, name, where = path.read_text(encoding="utf-8"), path.stem, str(path)
    else:
        raise ConfigError(f"unknown claims {name_or_path!r}: give one of {', '.join(SHIPPED)}, or the path of a "
                          f"claims CSV file (columns: {', '.join(COLUMNS)})")
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise ConfigError(f"{where}: no column {', '.join(missing)}; a claims file has the columns "
                          f"{', '.join(COLUMNS)}")
    paper = _paper(paper_csv)
    claims = tuple(_claim(row, f"{where} line {reader.line_num}", paper, paper_csv) for row in reader)
    if not claims:
        raise ConfigError(f"{where}: no claims; give one row per claimed number")
    return Claims(name, where, claims)


def _paper(paper_csv) -> dict:
    from .tables import load_paper

    if paper_csv is not None and not Path(paper_csv).is_file():
        raise MissingFileError(f"{paper_csv}: no such file; give the paper's tables as a CSV (table, backbone, "
                               "method, train_patch, set, metric, value)")
    return load_paper(paper_csv)


def _claim(row: dict, where: str, paper: dict, paper_csv) -> Claim:
    """One row as a :class:`Claim`, refused (naming the row and the value) where it names nothing known."""
    from ..data.sets import canonical_name, paper_set_name
    from ..metrics.registry import METRICS
    from ..models.zoo import ZOO
    from ..protocols import get_protocol

    row = {k: (row.get(k) or "").strip() for k in COLUMNS}
    try:
        row["set"] = canonical_name(row["set"])
        get_protocol(row["protocol"])
    except AesopBenchError as exc:  # the registries' own errors name what is valid
        raise ConfigError(f"{where}: {exc}") from None
    if row["metric"] not in METRICS:
        raise ConfigError(f"{where}: unknown metric {row['metric']!r}; choose one of {', '.join(METRICS)}")
    if row["model"] not in ZOO:
        raise ConfigError(f"{where}: unknown zoo model {row['model']!r}; choose one of {', '.join(ZOO)}")
    if not _PRINTED.fullmatch(row["claimed"]):
        raise ConfigError(f"{where}: claimed {row['claimed']!r}: give the number as the page prints it, digits "
                          "and a decimal point (25.93)")
    key = (row["table"], row["backbone"], row["method"], row["train_patch"], paper_set_name(row["set"]),
           row["metric"])
    value = paper.get(key)
    if value is None:
        raise ConfigError(f"{where}: the paper's tables ({paper_csv or 'aesop_paper_tables.csv'}) have no value "
                          f"for {', '.join(key)}; give the table, backbone, method and train_patch of the cell the "
                          "claim is a rounding of")
    return Claim(**row, paper=getattr(value, "text", None) or repr(float(value)))


def as_decimal(value) -> Decimal:
    """A number as the decimal it is printed as: text as written, a float by its shortest form (``repr``), not by
    its binary expansion (25.935 is stored as 25.93499999999999872...: rounded as stored it would be 25.93).

    >>> as_decimal(25.935), Decimal(25.935) < as_decimal(25.935), as_decimal("25.930")
    (Decimal('25.935'), True, Decimal('25.930'))
    """
    if isinstance(value, Decimal):
        return value
    if isinstance(value, str):
        return Decimal(value)
    return Decimal(repr(float(value)))


def printed_digits(printed: str) -> int:
    """The decimals a printed number shows (``"25.930"``: 3)."""
    return max(0, -as_decimal(printed).as_tuple().exponent)


def rounds_to(value, printed: str) -> bool:
    """Whether ``value`` rounded half up to the decimals of ``printed`` is ``printed``.

    >>> rounds_to(25.925, "25.93"), rounds_to(25.935, "25.93"), rounds_to(25.9249999, "25.93")
    (True, False, False)
    """
    target = as_decimal(printed)
    try:
        got = as_decimal(value).quantize(Decimal(1).scaleb(target.as_tuple().exponent), rounding=ROUND_HALF_UP)
    except InvalidOperation:  # inf (a PSNR of identical images without the 1e-8) rounds to nothing
        return False
    return got.is_finite() and got == target


@dataclass(frozen=True)
class Verdict:
    """A claim's status (:data:`VERIFIED`, :data:`CONSISTENT`, :data:`DIFFERS`, :data:`NOT_VERIFIABLE`), its text as
    the table shows it, measured minus claimed, and whether the measured value rounds to the claim and to the
    paper (None where nothing was measured)."""

    status: str
    text: str
    delta: Decimal | None = None
    rounds_to_claim: bool | None = None
    rounds_to_paper: bool | None = None


def judge(claimed: str, measured: float | None, paper: str | None, doubts: Sequence[str] = (),
          missing: Sequence[str] = (), places: int | None = None) -> Verdict:
    """The status of a claim (the module's rules): ``missing`` says what could not be had (weights, data), so
    nothing was measured; ``doubts`` what makes the model or the data other than the paper's (the measured value
    is kept, the status is not verifiable). ``places``: the decimals of the difference (default one more than
    the claim's).

    >>> judge("25.93", 25.9298, "25.930").text, judge("25.93", 25.925, "25.930").text
    ('verified', 'consistent')
    >>> judge("25.93", 25.935, "25.930", places=3).text
    'differs (by +0.005)'
    >>> judge("25.93", 25.930, "25.930", doubts=["not the paper's model"]).text
    "not verifiable here (not the paper's model)"
    """
    if missing or measured is None:
        return Verdict(NOT_VERIFIABLE, f"{NOT_VERIFIABLE} ({'; '.join(missing) or 'nothing measured'})")
    places = printed_digits(claimed) + 1 if places is None else places
    delta = as_decimal(measured) - as_decimal(claimed)
    to_claim = rounds_to(measured, claimed)
    to_paper = rounds_to(measured, paper) if paper else None
    if doubts:
        status, text = NOT_VERIFIABLE, f"{NOT_VERIFIABLE} ({'; '.join(doubts)})"
    elif to_claim and to_paper:
        status = text = VERIFIED
    elif to_claim:
        status = text = CONSISTENT
    else:
        status, text = DIFFERS, f"{DIFFERS} (by {signed(delta, places)})"
    return Verdict(status, text, delta, to_claim, to_paper)


def signed(d: Decimal, places: int) -> str:
    """``d`` with a sign and ``places`` decimals, rounded half up (``+0.005``)."""
    if not d.is_finite():
        return str(d)
    return f"{d.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP):+f}"


@dataclass(frozen=True)
class Reason:
    """Why a claim is not verifiable: a few words for its status, and the whole story (what to do) for a note."""

    short: str
    detail: str = ""


@dataclass
class Group:
    """One (model, protocol, set) to evaluate with the metrics its claims need; what stops it (``blockers``) and
    what must be fetched first."""

    model: str
    protocol: str
    set: str
    metrics: list[str]
    weights: list[str] = field(default_factory=list)  # every weights entry it needs: the model's, the metrics'
    fetch_weights: list[str] = field(default_factory=list)
    fetch_set: bool = False
    blockers: list[Reason] = field(default_factory=list)

    def run_dir(self, folder: Path) -> Path:
        return folder / "runs" / f"{self.model}-{self.protocol}"


def _groups(cs: Claims, data_root: Path, download: bool) -> dict[tuple, Group]:
    """The evaluations the claims need, with what is missing and whether it can be fetched."""
    from .. import weights as wm
    from ..data.manage import incomplete
    from ..data.sets import SETS, fingerprints, set_folder
    from ..metrics.registry import get_spec
    from ..models.zoo import ZOO

    groups: dict[tuple, Group] = {}
    for c in cs.claims:
        g = groups.setdefault((c.model, c.protocol, c.set), Group(c.model, c.protocol, c.set, []))
        if c.metric not in g.metrics:
            g.metrics.append(c.metric)
    for g in groups.values():
        names = [ZOO[g.model].weights] + [w for m in g.metrics for w in get_spec(m).weights]
        g.weights = list(dict.fromkeys(n for n in names if n))
        for name in g.weights:
            e = wm.entry(name)
            c = wm.check(e)
            if c.status == "mismatch":
                g.blockers.append(Reason(f"weights {name} changed", f"{e.file}: {c.detail}"))
            elif c.status == "missing":
                if download and e.urls:
                    g.fetch_weights.append(name)
                else:
                    g.blockers.append(Reason(f"weights {name} missing", _weights_hint(e)))
        entry = SETS[g.set]
        present = set_folder(g.set, data_root) is not None
        if not present or any(incomplete(g.set, data_root)):
            if download and (fingerprints(g.set) or entry.archive):
                g.fetch_set = True
            else:
                hint = f"run `aesop-bench data download {g.set}`" if fingerprints(g.set) or entry.archive else \
                    entry.manual
                where = f"{entry.folder} under {data_root} is incomplete" if present else \
                    f"no {entry.folder} folder under {data_root}"
                g.blockers.append(Reason(f"set {g.set} {'incomplete' if present else 'missing'}", f"{where}: {hint}"))
    return groups


def _weights_hint(e) -> str:
    from ..paths import weights_dir

    how = e.manual or f"run `aesop-bench weights download {e.name}`"
    return f"{e.file} is not in the weights cache {weights_dir()}: {how}"


def _fetch(g: Group, data_root: Path, log, tried: dict) -> None:
    """Download what ``g`` lacks (the model's weights first: without them nothing else is needed); a failure
    becomes a blocker. ``tried`` keeps each item's outcome, so that claims sharing a file try it once."""
    from .. import weights as wm
    from ..data import ldl
    from ..data.manage import download_set
    from ..metrics.validators import weights_validator
    from ..protocols import get_protocol

    def once(key, short, fn):
        if key not in tried:
            try:
                fn()
                tried[key] = None
            except (AesopBenchError, OSError) as exc:
                tried[key] = Reason(short, str(exc))
        if tried[key] is not None:
            g.blockers.append(tried[key])

    for name in g.fetch_weights:
        once(("weights", name), f"weights {name} missing",
             lambda name=name: wm.download(name, log=log, validate=weights_validator(name)))
        if g.blockers:
            return
    if g.fetch_set:
        once(("set", g.set), f"set {g.set} missing", lambda: download_set(g.set, data_root, log=log))
    protocol = get_protocol(g.protocol)
    if not g.blockers and ldl.reads_ldl(g.set, protocol) and ldl.set_dir(g.set, data_root, protocol.scale) is None:
        key = ("ldl", g.set)
        if key not in tried:  # where LDL's files cannot be had, the set's own are read (a fallback, recorded)
            try:
                ldl.download(data_root, log=log, sets=[g.set])
            except (AesopBenchError, OSError) as exc:
                log(f"{exc}\n{g.set}: its own files are used under the mod-12 rule instead")
            tried[key] = None


def model_doubts(c: Claim) -> list[Reason]:
    """What makes the claim's model other than the paper's: a zoo entry with another paper row (or none), a doubt
    recorded on its match to that row, a weights file that is not the published one."""
    from .. import weights as wm
    from ..models.zoo import ZOO
    from ..weights.manifest import shipped

    e = ZOO[c.model]
    out = []
    if e.paper is None:
        out.append(Reason(f"not the paper's model: {c.model} is no column of the paper",
                          f"{c.model} ({e.description}) has no row in the paper's tables"))
    elif tuple(e.paper) != c.cell:
        out.append(Reason(f"not the paper's model: {c.model} is the paper's {' '.join(e.paper)}",
                          f"{c.model} stands for the paper's {' '.join(e.paper)} (backbone, method, train patch); "
                          f"the claim is a rounding of {' '.join(c.cell)}"))
    if e.paper_note:
        file = f" is {wm.entry(e.weights).file}" if e.weights else ""
        out.append(Reason(f"not the paper's model: {c.model}{file}", f"{c.model}: {e.paper_note}"))
    digest = wm.digest(e.weights) if e.weights else None
    if digest is not None:
        published = shipped().get(e.weights)
        if published is None or ((published.sha256 or published.sha256_prefix)
                                 and not wm.is_published(e.weights, digest)):
            want = "no packaged entry" if published is None else \
                f"published sha256 {published.sha256 or published.sha256_prefix + '...'}"
            out.append(Reason(f"weights {e.weights} are not the published file",
                              f"{wm.entry(e.weights).file}: sha256 {digest} ({want})"))
    return out


def data_doubts(run, c: Claim, data_root: Path) -> list[Reason]:
    """What makes a set's values other than the authors' test data's: a fallback to the set's own files, files
    that differ from the pinned public ones, values over part of the set."""
    from ..data.manage import verify_set
    from .tables import incomplete_notes

    out = []
    fallback = run.fallback(c.set)
    if fallback:
        out.append(Reason("not the authors' test data: fallback", f"{c.set}: {fallback}"))
    record = (run.sets.get(c.set, {}).get("data") or {})
    if record.get("source") == "own":
        rep = verify_set(c.set, data_root)
        if rep.status in ("differs", "missing"):
            out.append(Reason(f"set {c.set} is not its pinned files", rep.line()))
    if run.value(c.set, c.metric) is None and c.set in run.sets:
        notes = incomplete_notes({"sets": run.sets}, [c.set])
        out.append(Reason(f"{c.set} incomplete", "; ".join(notes) or f"no {c.metric} value stored for {c.set}"))
    return out


def verify_claims(claims: str | Claims, out: str | Path = "reports", device: str = "cpu",
                  data_root: str | Path | None = None, download: bool = True, dry_run: bool = False,
                  threads: int | None = None, progress: bool = False, paper_csv: str | Path | None = None,
                  command: str | None = None, log=None) -> dict:
    """Check a claims file (a shipped name, a path, or :class:`Claims`): evaluate what its claims need (fetching
    what is missing where ``download``), judge each claim, write ``OUT/verify/NAME/claims.{md,csv,json}``.
    Returns ``{"claims", "rows", "lines", "files"}``: ``lines`` are what to show; a dry run computes and writes
    nothing and its lines say what would be fetched and computed. ``log`` takes progress messages (default:
    standard error)."""
    import sys

    from ..paths import data_root as default_root

    log = log or (lambda msg: print(msg, file=sys.stderr))
    cs = claims if isinstance(claims, Claims) else load_claims(claims, paper_csv)
    data_root = default_root(data_root)
    folder = Path(out) / "verify" / cs.name
    groups = _groups(cs, data_root, download)
    if dry_run:
        return {"claims": cs, "rows": [], "files": [], "lines": _dry_lines(cs, groups, data_root, folder, device)}
    tried: dict = {}
    for g in groups.values():
        if not g.blockers:
            _fetch(g, data_root, log, tried)
    for g in groups.values():
        if not g.blockers:
            _evaluate(g, data_root, folder, device, threads, progress, log)
    runs = _read_runs(groups, folder)
    rows = [_row(c, groups[(c.model, c.protocol, c.set)], runs, data_root) for c in cs.claims]
    prov = provenance(cs, groups, runs, data_root, device, command, paper_csv)
    files = write_report(cs, rows, prov, folder)
    return {"claims": cs, "rows": rows, "files": files,
            "lines": [to_markdown(cs, rows, prov)] + [f"wrote {f}" for f in files]}


def _evaluate(g: Group, data_root: Path, folder: Path, device: str, threads, progress, log) -> None:
    """The group's metrics on its set, into the (model, protocol) run folder: the path ``reproduce`` takes."""
    from ..evaluation.config import ModelRef, build_config
    from ..evaluation.runner import run_evaluation
    from ..models.options import RunOptions

    cfg = build_config(ModelRef(g.model), [g.set], list(g.metrics), g.protocol, data_root=data_root,
                       out=g.run_dir(folder), run=RunOptions(device=device), download=False, progress=progress,
                       log=log, threads=threads)
    run_evaluation(cfg)


def _read_runs(groups: dict[tuple, Group], folder: Path) -> dict[tuple, object]:
    """The run folder of each (model, protocol) that was evaluated here."""
    from ..evaluation.runfolder import RunFolder
    from .runs import read_run

    runs = {}
    for g in groups.values():
        key = (g.model, g.protocol)
        if key not in runs and not g.blockers and RunFolder(g.run_dir(folder)).has_summary():
            runs[key] = read_run(g.run_dir(folder))
    return runs


def _row(c: Claim, g: Group, runs: dict, data_root: Path) -> dict:
    """One claim's row: its verdict, the measured value and every reason behind a 'not verifiable here'."""
    from .tables import decimals

    doubts = model_doubts(c)
    run = None if g.blockers else runs.get((c.model, c.protocol))
    measured = None if run is None else run.value(c.set, c.metric)
    if run is not None:
        doubts += data_doubts(run, c, data_root)
    missing = list(g.blockers)
    if run is None and not missing:
        missing.append(Reason("not evaluated", f"no run folder for {c.model} under {c.protocol}"))
    places = max(decimals(c.metric), printed_digits(c.claimed) + 1)
    shorts = list(dict.fromkeys(r.short for r in missing + doubts))
    if measured is None:  # nothing to show: every reason is why
        verdict = judge(c.claimed, None, c.paper, missing=shorts, places=places)
    else:
        verdict = judge(c.claimed, measured, c.paper, doubts=shorts, places=places)
    return {"claim": c, "verdict": verdict, "measured": measured, "reasons": missing + doubts, "places": places,
            "claim_matches_paper": rounds_to(c.paper, c.claimed),
            "run": None if run is None else str(run.path),
            "computed_on": [] if run is None else run.sets.get(c.set, {}).get("computed_on", [])}


def _cells(row: dict) -> list[str]:
    """A row's cells under :data:`HEADER`, the status without its note marks."""
    from .tables import arrow, fmt, label

    c, v = row["claim"], row["verdict"]
    return [c.site_label, f"{label(c.metric)} {arrow(c.metric)}", c.claimed, c.paper, fmt(c.metric, row["measured"]),
            "-" if v.delta is None else signed(v.delta, row["places"]), v.text]


RULES = ("verified: the measured value rounds to the claim and to the paper's value, on the paper's model and the "
         "authors' test data; consistent: it rounds to the claim only; differs (by X): it does not round to the "
         "claim, X = measured - claimed; not verifiable here: weights or data missing, or a model or data other "
         "than the paper's (then Measured and Δ are shown, the status is never verified nor consistent). Rounding: "
         "half up at the printed digits, a measured value by its shortest decimal form")


def to_markdown(cs: Claims, rows: list[dict], prov: dict | None = None) -> str:
    """The claims table in Markdown, the notes its statuses point to, the rules, and the provenance in brief."""
    from .tables import _md_escape

    notes: dict[str, int] = {}
    sources = "; ".join(dict.fromkeys(c.source for c in cs.claims))
    lines = [f"# Claims check: {cs.name}", "", f"Claims: {len(cs.claims)} from {cs.path}; source: {sources}",
             "", "| " + " | ".join(HEADER) + " |", "|---|---|---:|---:|---:|---:|---|"]
    for row in rows:
        cells = _cells(row)
        marks = sorted({notes.setdefault(r.detail, len(notes) + 1) for r in row["reasons"] if r.detail})
        if marks:
            cells[-1] += " " + "".join(f"[{n}]" for n in marks)
        lines.append("| " + " | ".join(map(_md_escape, cells)) + " |")
    lines.append("")
    lines += [f"[{n}] {_md_escape(detail)}" for detail, n in notes.items()]
    off = [r["claim"] for r in rows if not r["claim_matches_paper"]]
    if off:
        lines.append("Claims that are not the paper's value rounded to their digits: " +
                     ", ".join(f"{c.site_label} {c.metric} {c.claimed} (paper {c.paper})" for c in off))
    else:
        lines.append("Every claim is its paper cell rounded to the claim's digits.")
    cells = sorted({f"{c.table} {' '.join(c.cell)} ({c.model}, protocol {c.protocol})" for c in cs.claims})
    lines += ["", f"Paper cells: {'; '.join(cells)}.", "", f"Status: {RULES}."]
    if prov is not None:
        project = prov["project"]
        lines += ["", f"Computed by aesop-bench {project['version']}" +
                  (f" at commit {project['commit']}" + (" (with local changes)" if project.get("modified") else "")
                   if project.get("commit") else "") +
                  f", torch {prov['torch']}, device {prov['device']['name']}; claims.json holds the sha256 of every "
                  "weights and set file used."]
    return "\n".join(lines) + "\n"


def to_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    # the table's columns first (the status without note marks), then the exact values and the claim's cell
    w.writerow(list(HEADER) + ["reason", "set", "metric_name", "measured_exact", "delta_exact", "rounds_to_claim",
                               "rounds_to_paper", "claim_matches_paper", "table", "backbone", "method",
                               "train_patch", "model", "protocol"])
    for row in rows:
        c, v = row["claim"], row["verdict"]
        w.writerow(_cells(row) + ["; ".join(r.detail or r.short for r in row["reasons"]), c.set, c.metric,
                                  "" if row["measured"] is None else repr(row["measured"]),
                                  "" if v.delta is None else str(v.delta), _flag(v.rounds_to_claim),
                                  _flag(v.rounds_to_paper), _flag(row["claim_matches_paper"]), c.table,
                                  c.backbone, c.method, c.train_patch, c.model, c.protocol])
    return buf.getvalue()


def _flag(b: bool | None) -> str:
    return "" if b is None else str(b).lower()


def to_json(cs: Claims, rows: list[dict], prov: dict) -> dict:
    out = []
    for row in rows:
        c, v = row["claim"], row["verdict"]
        out.append({"dataset": c.site_label, "set": c.set, "metric": c.metric, "claimed": c.claimed,
                    "paper": c.paper, "measured": row["measured"],
                    "delta": None if v.delta is None else str(v.delta), "status": v.status, "status_text": v.text,
                    "reasons": [{"short": r.short, "detail": r.detail} for r in row["reasons"]],
                    "rounds_to_claim": v.rounds_to_claim, "rounds_to_paper": v.rounds_to_paper,
                    "claim_matches_paper": row["claim_matches_paper"],
                    "cell": {"table": c.table, "backbone": c.backbone, "method": c.method,
                             "train_patch": c.train_patch},
                    "model": c.model, "protocol": c.protocol, "source": c.source, "run": row["run"],
                    "computed_on": row["computed_on"]})
    return {"claims": cs.name, "file": cs.path, "rules": RULES, "rounding": "ROUND_HALF_UP at the printed digits",
            "rows": out, "provenance": prov}


def write_report(cs: Claims, rows: list[dict], prov: dict, folder: Path) -> list[Path]:
    """``claims.md``, ``claims.csv`` and ``claims.json`` in ``folder`` (each written whole or not at all)."""
    from ..fileutil import atomic_write_json, atomic_write_text

    folder.mkdir(parents=True, exist_ok=True)
    files = [folder / "claims.md", folder / "claims.csv", folder / "claims.json"]
    atomic_write_text(files[0], to_markdown(cs, rows, prov))
    atomic_write_text(files[1], to_csv(rows))
    atomic_write_json(files[2], to_json(cs, rows, prov))
    return files


def provenance(cs: Claims, groups: dict[tuple, Group], runs: dict, data_root: Path, device: str,
               command: str | None = None, paper_csv=None) -> dict:
    """What the numbers came from: the project (commit, or installed version), torch and the device, the sha256 of
    every weights file and set file used, the protocols, the metric versions (the registry's, and those the runs
    stored), the paper's tables, and the command line."""
    import datetime
    import platform
    import shlex
    import sys

    import torch

    from .. import weights as wm
    from ..fileutil import sha256_cached
    from ..metrics.registry import get_spec
    from ..paths import installed_version
    from ..protocols import get_protocol

    weights = {}
    for g in groups.values():
        for name in g.weights:
            e = wm.entry(name)
            digest = wm.digest(name)
            weights[name] = {"file": e.file, "sha256": digest, "check": wm.check(e).status,
                             "published": None if digest is None else wm.is_published(name, digest)}
    sets = {}
    for g in groups.values():
        key = f"{g.set}@{g.protocol}"
        if key not in sets and not g.blockers:
            sets[key] = _set_files(g.set, data_root, get_protocol(g.protocol))
    metrics = sorted({c.metric for c in cs.claims})
    paper_file = Path(paper_csv) if paper_csv else Path(__file__).with_name("aesop_paper_tables.csv")
    commit, modified = checkout_commit()
    name = device
    if str(device).startswith("cuda") and torch.cuda.is_available():
        name = f"{device} ({torch.cuda.get_device_name(torch.device(device))})"
    return {
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": command or shlex.join(sys.argv),
        "project": {"version": installed_version(), "commit": commit, "modified": modified},
        "python": platform.python_version(), "torch": torch.__version__,
        "device": {"asked": device, "name": name},
        "protocols": {p: get_protocol(p).as_dict() for p in sorted({c.protocol for c in cs.claims})},
        "metrics": {m: {"registry_version": get_spec(m).version,
                        "computed_as": sorted({r.versions[m] for r in runs.values() if m in r.versions})}
                    for m in metrics},
        "weights": weights, "sets": sets, "runs": {f"{m}@{p}": str(r.path) for (m, p), r in runs.items()},
        "paper_tables": {"file": str(paper_file),
                         "sha256": sha256_cached(paper_file) if paper_file.is_file() else None},
        "claims_file": cs.path,
    }


def _set_files(name: str, data_root: Path, protocol) -> dict:
    """Where a set's files were read from under ``protocol`` and the sha256 of each (HR, and LR where read)."""
    from ..data.ldl import resolve_for
    from ..fileutil import sha256_cached

    try:
        res = resolve_for(name, data_root, protocol)
    except Exception as exc:  # noqa: BLE001 - a set that vanished after its run: say so, the run has its record
        return {"error": str(exc)}
    files = list(res.hr_files)
    if res.protocol(protocol).lr_source == "folder":
        files += [f for f in (res.lr_file(h, protocol.scale) for h in res.hr_files) if f is not None]

    def rel(p: Path) -> str:
        try:
            return p.resolve().relative_to(Path(data_root).resolve()).as_posix()
        except ValueError:
            return str(p)
    return {"data": res.data, "data_root": str(data_root), "files": {rel(f): sha256_cached(f) for f in files}}


def checkout_commit() -> tuple[str | None, bool | None]:
    """The commit of the checkout the package runs from and whether its tracked files have local changes
    (``(None, None)`` outside a git checkout, or without git). Read-only: git takes no optional locks."""
    import subprocess

    root = Path(__file__).resolve().parents[2]
    if not (root / ".git").exists():
        return None, None

    def git(*args) -> str | None:
        try:
            done = subprocess.run(["git", "--no-optional-locks", "-C", str(root), *args], capture_output=True,
                                  text=True, timeout=30, check=False)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if commit is None:
        return None, None
    status = git("status", "--porcelain", "--untracked-files=no")
    return commit, None if status is None else bool(status)


def _dry_lines(cs: Claims, groups: dict[tuple, Group], data_root: Path, folder: Path, device: str) -> list[str]:
    """What a run would fetch and compute, and each claim's status as far as it is known before computing."""
    from .recipes import Recipe
    from .reproduce import _minutes, plan
    from .tables import label

    lines = [f"claims {cs.name} ({cs.path}): {len(cs.claims)} claims; output {folder}"]
    cpu = gpu = 0.0
    todo = []
    for g in groups.values():
        recipe = Recipe(f"{cs.name}-{g.set}", "generic", {"claims": (g.model,)}, (g.set,), tuple(g.metrics),
                        g.protocol)
        p = plan(recipe, None, data_root, folder, device)
        what = f"{g.model} on {g.set} ({', '.join(g.metrics)}, protocol {g.protocol})"
        if g.blockers:
            lines.append(f"  {what}: not computed: {'; '.join(r.short for r in g.blockers)}")
            continue
        cpu, gpu = cpu + p.estimate_s, gpu + p.gpu_estimate_s
        fetch = g.fetch_weights + ([f"set {g.set}"] if g.fetch_set else []) + \
            ([f"LDL's {g.set} (else its own files: a fallback)"] if p.ldl_missing else [])
        stored = not any(s for _, s in p.runs)
        lines.append(f"  {what}: " + ("stored already" if stored else "to compute") +
                     (f", after fetching {', '.join(fetch)}" if fetch and not stored else ""))
        if not stored:
            todo.append(g)
    estimate = f"about {_minutes(cpu)} on a 2-core CPU" + (f", about {_minutes(gpu)} on one GPU"
                                                            if device.startswith("cuda") else "")
    lines.append(f"to compute: {len(todo)} (model, set) runs, {estimate}")
    notes: dict[str, int] = {}
    lines.append("claims:")
    for c in cs.claims:
        g = groups[(c.model, c.protocol, c.set)]
        reasons = g.blockers + model_doubts(c)
        status = f"{NOT_VERIFIABLE} ({'; '.join(dict.fromkeys(r.short for r in reasons))})" if reasons else \
            "to be judged once computed"
        marks = "".join(f"[{n}]" for n in sorted({notes.setdefault(r.detail, len(notes) + 1)
                                                    for r in reasons if r.detail}))
        match = "" if rounds_to(c.paper, c.claimed) else " (not the paper's value rounded)"
        lines.append(f"  {c.site_label}, {label(c.metric)} {c.claimed} (paper {c.paper}){match}: "
                     f"{status}{' ' + marks if marks else ''}")
    lines += [f"  [{n}] {detail}" for detail, n in notes.items()]
    if any(not g.blockers for g in groups.values()):
        lines.append("the data's own doubts (a fallback from LDL's files, files other than the pinned ones) are known "
                     "once the sets are read")
    return lines


__all__ = ["SHIPPED", "Claim", "Claims", "Reason", "Verdict", "as_decimal", "checkout_commit", "judge", "load_claims",
           "model_doubts", "provenance", "rounds_to", "verify_claims"]
