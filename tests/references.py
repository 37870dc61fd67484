"""Reference packages as the tests use them (shims for their version drift)."""

from __future__ import annotations

import sys
import types


def basicsr_archs():
    # basicsr 1.4.2 imports a torchvision module that newer torchvision renamed; give it the old name
    import torchvision.transforms.functional as tvf

    shim = types.ModuleType("torchvision.transforms.functional_tensor")
    shim.rgb_to_grayscale = tvf.rgb_to_grayscale
    sys.modules.setdefault("torchvision.transforms.functional_tensor", shim)
    import basicsr.archs as archs
    from basicsr.archs import discriminator_arch, rrdbnet_arch, swinir_arch

    return types.SimpleNamespace(rrdb=rrdbnet_arch, swinir=swinir_arch, disc=discriminator_arch, all=archs)
