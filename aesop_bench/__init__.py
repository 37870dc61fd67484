"""aesop-bench: benchmark and reproduction harness for perceptual image super-resolution (AESOP, CVPR 2025)."""

__version__ = "0.1.0"
