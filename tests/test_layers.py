"""The package's layer order (docs/ARCHITECTURE.md): core -> data -> weights -> models -> metrics ->
evaluation/api -> train -> report -> cli. A module imports only from its own layer or below, at module level or
inside a function, and no modules import each other in a cycle."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "aesop_bench"
LAYERS = [
    ("core", ["errors", "paths", "fileutil", "determinism", "distributed", "threads", "protocols", "download",
              "imageio", "cache"]),
    ("data", ["data"]),
    ("weights", ["weights"]),
    ("models", ["models"]),
    ("metrics", ["metrics"]),
    ("evaluation", ["evaluation", "api"]),
    ("train", ["train"]),
    ("report", ["report"]),
    ("cli", ["cli", "__main__", ""]),
]


def _modules() -> dict[str, Path]:
    out = {}
    for p in PKG.rglob("*.py"):
        parts = p.relative_to(PKG).with_suffix("").parts
        parts = parts[:-1] if parts[-1] == "__init__" else parts
        out[".".join(("aesop_bench",) + parts)] = p
    return out


MODULES = _modules()


def layer_of(module: str) -> int:
    first = module.split(".")[1] if "." in module else ""
    for i, (_, tops) in enumerate(LAYERS):
        if first in tops:
            return i
    raise AssertionError(f"{module} belongs to no layer; add it to LAYERS and docs/ARCHITECTURE.md")


def imports_of(module: str) -> set[str]:
    """Every aesop_bench module ``module`` imports, wherever the import statement is."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("aesop_bench"):
                for alias in node.names:
                    sub = f"{target}.{alias.name}"
                    found.add(sub if sub in MODULES else target)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("aesop_bench"))
    return {m for m in found if m in MODULES} - {module}


def test_every_import_goes_down_or_sideways():
    bad = [f"{m} ({LAYERS[layer_of(m)][0]}) imports {t} ({LAYERS[layer_of(t)][0]})"
           for m in MODULES for t in imports_of(m) if layer_of(t) > layer_of(m)]
    assert not bad, "\n".join(bad)


def test_no_import_cycles():
    graph = {m: imports_of(m) for m in MODULES}
    # a module's package __init__ runs before it; the package itself importing its own modules is no cycle
    for m in graph:
        graph[m] = {t for t in graph[m] if not m.startswith(t + ".")}
    state: dict[str, int] = {}
    cycles = []

    def visit(m, path):
        state[m] = 1
        for t in sorted(graph[m]):
            if state.get(t) == 1:
                cycles.append(" -> ".join(path[path.index(t):] + [t]))
            elif t not in state:
                visit(t, path + [t])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    assert not cycles, "\n".join(cycles)


def test_the_checker_sees_function_level_imports(tmp_path):
    # the layer test must fail on a lower layer reaching up inside a function, as the old registry did
    assert "aesop_bench.download" in imports_of("aesop_bench.weights.cache")
    # metrics.validators imports the zoo only inside weights_validator, a function
    assert "aesop_bench.models.zoo" in imports_of("aesop_bench.metrics.validators")
    src = (PKG / "metrics" / "validators.py").read_text()
    assert "\n    from ..models.zoo import model_weights_validator" in src  # indented: inside a function


@pytest.mark.parametrize("layer", range(len(LAYERS) - 1))
def test_a_layer_imported_alone_loads_no_higher_layer(layer):
    names = [m for m in MODULES if layer_of(m) == layer and not m.endswith("__main__")]
    code = ("import sys\n" + "".join(f"import {m}\n" for m in names) +
            "print('\\n'.join(m for m in sys.modules if m.startswith('aesop_bench')))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            cwd=PKG.parent).stdout.split()
    # the package's own __init__ always runs first; it exports the API lazily (module __getattr__) and
    # imports nothing at load time, which the first line checks
    assert not [n for n in ast.parse((PKG / "__init__.py").read_text()).body if isinstance(n, (ast.Import, ast.ImportFrom))
                and (n.level or (getattr(n, "module", "") or "").startswith("aesop_bench")) and
                not (isinstance(n, ast.ImportFrom) and n.module == "__future__")]
    higher = [m for m in loaded if m in MODULES and m != "aesop_bench" and layer_of(m) > layer]
    assert not higher, f"importing the {LAYERS[layer][0]} layer loads {higher}"
