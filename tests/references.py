"""Reference packages as the tests use them: one rule for their absence, and shims for their version drift.

The rule: a package of pyproject's ``test`` extra (pyiqa, lpips, basicsr, ...) or a dependency of aesop-bench
itself (scipy, pytorch-fid) is imported bare, at the top of the test file or in the test: its absence is a broken
install, and the test fails saying so. Any other package is optional: :func:`optional` imports it or skips the
test with one line saying how to install it. Never ``pytest.importorskip`` a test dependency: a broken install
would pass as skips.
"""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def _test_extra() -> set[str]:
    """The normalised names of pyproject's ``test`` extra and the package's own dependencies (none before Python
    3.11, which has no TOML reader: the check is left to the newer versions)."""
    try:
        import tomllib
    except ModuleNotFoundError:
        return set()
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    reqs = project["dependencies"] + project["optional-dependencies"]["test"]
    return {re.sub(r"[-_.]+", "-", re.match(r"[A-Za-z0-9_.-]+", r).group()).lower() for r in reqs}


def optional(module: str, package: str | None = None):
    """``module``, or a skip saying ``pip install PACKAGE`` (``package``: its distribution, by default the
    module's name). Only for packages outside the test extra; a test dependency is imported bare."""
    import pytest  # here: the benchmarks import this module without pytest

    package = package or module
    if re.sub(r"[-_.]+", "-", package).lower() in _test_extra():
        raise RuntimeError(f"{package} is a test dependency (pyproject.toml): import {module} bare, so that its "
                           "absence fails")
    return pytest.importorskip(module, reason=f"optional reference package {package} not installed: "
                                              f"pip install {package}")


def basicsr_archs():
    # basicsr 1.4.2 imports a torchvision module that newer torchvision renamed; give it the old name
    import torchvision.transforms.functional as tvf

    shim = types.ModuleType("torchvision.transforms.functional_tensor")
    shim.rgb_to_grayscale = tvf.rgb_to_grayscale
    sys.modules.setdefault("torchvision.transforms.functional_tensor", shim)
    import basicsr.archs as archs
    from basicsr.archs import discriminator_arch, rrdbnet_arch, swinir_arch

    return types.SimpleNamespace(rrdb=rrdbnet_arch, swinir=swinir_arch, disc=discriminator_arch, all=archs)


def basicsr_degradations():
    """BasicSR's Real-ESRGAN pieces (``data.degradations``, ``utils.diffjpeg``, ``utils.img_process_util``),
    imported through the same torchvision shim as :func:`basicsr_archs`."""
    basicsr_archs()  # installs the shim (and imports basicsr, which its data package needs)
    from basicsr.data import degradations
    from basicsr.utils import diffjpeg, img_process_util

    return types.SimpleNamespace(degradations=degradations, diffjpeg=diffjpeg, img_process_util=img_process_util)
