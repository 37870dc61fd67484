"""aesop-bench: benchmark and reproduction harness for perceptual image super-resolution (AESOP, CVPR 2025).

The Python API (see :mod:`aesop_bench.api`)::

    import aesop_bench as ab
    ab.metric("lpips")(sr, hr)                      # per-image values
    result = ab.evaluate(net, sets=["set5", "set14"], metrics=["psnr", "ssim", "lpips"])
    result.summary, result.per_image                # summary.json's dict, a pandas DataFrame
    ab.load_run("runs/bicubic-basicsr")            # any run folder as a DataFrame
    ab.verify_claims("aesop", out="reports")       # a results page's claims against the paper and a fresh run

Names are imported on first use, so ``import aesop_bench`` (and the command line) starts without torch.
"""

__version__ = "0.1.0"

_API = ("metric", "Metric", "evaluate", "load_run", "protocol", "Result", "module_identity", "verify_claims")
__all__ = ["__version__", *_API]


def __getattr__(name):
    if name == "verify_claims":  # the claims check is a report, above the evaluation API
        from .report.claims import verify_claims

        return verify_claims
    if name in _API:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'aesop_bench' has no attribute {name!r}")
