"""Metric options: each declared with a type and its allowed values or range, checked where it is given.

An :class:`Option` converts what a caller gives (a number, or the text the command line's YAML reads: ``1e6``
is text to YAML) to one canonical value, so that every spelling of a value (``100``, ``100.0``, ``"1e2"``) is
one computation with one version tag, and refuses anything else with a :class:`~aesop_bench.errors.ConfigError`
naming the metric, the option, the value and the valid ones, before any network is loaded (as torchmetrics'
``FrechetInceptionDistance`` refuses a wrong ``feature`` in its constructor).

:func:`parse` reads a run's options, ``{metric: {option: value}}`` completed by the flat :data:`SHORTHANDS`,
against a table of metric specs (:data:`aesop_bench.metrics.registry.METRICS`, whose ``metric_options`` binds it).
Torch-free.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from ..errors import ConfigError

TYPES = (int, float, str)


@dataclass(frozen=True)
class Option:
    """One option of a metric: its type (int, float or str), default (None: unset), help, allowed values
    (``choices``, canonical: lower case) or inclusive range (``low``, ``high``) or, for text, what it names
    (``names``), and, for an option that changes the numbers, its version tag of the canonical value."""

    name: str
    type: type
    default: Any
    help: str
    choices: tuple = ()
    low: float | None = None
    high: float | None = None
    names: str = ""
    tag: Callable[[Any], str] | None = None

    def __post_init__(self):
        if self.type not in TYPES:
            raise TypeError(f"option {self.name}: type {self.type!r} is not one of {TYPES}")

    def valid(self) -> str:
        """The valid values, in words.

        >>> Option("n", int, None, "", low=0).valid()
        'a whole number >= 0, or None (the default)'
        """
        if self.choices:
            what = "one of " + ", ".join(map(str, self.choices))
        else:
            what = self.names or {int: "a whole number", float: "a finite number", str: "a non-empty text"}[self.type]
            what += "".join(f" {op} {v:g}" for op, v in ((">=", self.low), ("<=", self.high)) if v is not None)
        return what + (", or None (the default)" if self.default is None else "")

    def canonical(self, value: Any, metric: str) -> Any:
        """``value`` as the option's canonical value (None: the default), or a ConfigError naming what is valid.

        >>> split = Option("split_above", int, None, "", low=0)
        >>> split.canonical("1e6", "clipiqa"), split.canonical(100.0, "clipiqa"), split.canonical(None, "clipiqa")
        (1000000, 100, None)
        >>> Option("mode", str, "a", "", choices=("a", "b")).canonical(" B", "m")
        'b'
        """
        if value is None:
            return self.default
        got = self._convert(value)
        if got is None or (self.choices and got not in self.choices) or \
                (self.low is not None and got < self.low) or (self.high is not None and got > self.high):
            raise ConfigError(f"metric {metric!r}: option {self.name}={value!r} is not valid; give {self.valid()}")
        return got

    def _convert(self, value: Any) -> Any:
        """``value`` of the option's type, or None where it is not one (a bool is no number; text is read as one)."""
        if self.type is str:
            if isinstance(value, os.PathLike):
                value = os.fspath(value)
            if not isinstance(value, str) or not value.strip():
                return None
            return value.strip().lower() if self.choices else value
        if isinstance(value, str):
            value = _number(value.strip())
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            return None
        if self.type is int:
            return int(value) if float(value).is_integer() else None
        return float(value)


def _number(text: str) -> int | float | None:
    """The number ``text`` writes (``1000000``, ``1e6``, ``1_000_000``), or None."""
    for read in (int, float):
        try:
            return read(text)
        except ValueError:
            pass
    return None


def resolve(metric: str, declared: tuple[Option, ...], given: Mapping | None = None) -> dict:
    """Every declared option's canonical value: the defaults, overridden by ``given`` (None values keep the
    default); an unknown option is refused, naming the metric's options."""
    given = {k: v for k, v in (given or {}).items() if v is not None}
    known = {o.name: o for o in declared}
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise ConfigError(f"metric {metric!r} takes no option {', '.join(unknown)}; its options: "
                          f"{', '.join(known) or 'none'}")
    return {name: o.canonical(given.get(name), metric) for name, o in known.items()}


# flat names that set an option of every metric declaring it (``eval --ae``, ``--clipiqa-split-above``,
# ``--fid-mode``; the same keywords of ``aesop_bench.evaluate`` and flat names in recipes)
SHORTHANDS = {"ae": "ae", "clipiqa_split_above": "split_above", "fid_mode": "fid_mode"}


def parse(specs: Mapping, nested: dict | None = None, **shorthands) -> dict:
    """``{metric: {option: canonical value}}`` for the metric table ``specs``: ``nested`` in the metrics' own
    option names, completed by :data:`SHORTHANDS` (None: not given, the default; ``nested`` wins where both set an
    option).
    An unknown metric, option or shorthand, or a value an option refuses, is an error naming the valid ones."""
    nested = {} if nested is None else nested
    if not isinstance(nested, dict) or not all(isinstance(v, dict) for v in nested.values()):
        raise ConfigError(f"metric options {nested!r}: give {{metric: {{option: value}}}}, e.g. "
                          "{'clipiqa': {'split_above': 1000000}}")
    unknown = sorted(set(shorthands) - set(SHORTHANDS))
    if unknown:
        raise ConfigError(f"unknown option(s) {', '.join(unknown)}. Give {{metric: {{option: value}}}} with a "
                          f"metric's own options ({names(specs)}), or one of {', '.join(SHORTHANDS)}")
    out: dict[str, dict] = {}
    for flat, value in shorthands.items():
        if value is not None:
            for spec in specs.values():
                if any(o.name == SHORTHANDS[flat] for o in spec.options):
                    out.setdefault(spec.name, {})[SHORTHANDS[flat]] = value
    for name, opts in nested.items():
        if name not in specs:
            raise ConfigError(f"metric options for {name!r}: no such metric; the metrics: {', '.join(specs)}")
        out.setdefault(name, {}).update(opts)
    checked = {name: resolve(name, specs[name].options, opts) for name, opts in out.items()}
    return {name: {k: None if v is None else checked[name][k] for k, v in opts.items()} for name, opts in out.items()}


def names(specs: Mapping) -> str:
    """Every metric's options, as ``metric: option, option; ...``."""
    return "; ".join(f"{m}: {', '.join(o.name for o in spec.options)}" for m, spec in specs.items() if spec.options)
