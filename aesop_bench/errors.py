"""The project's errors: every message names the file or value and the fix.

One base type, :class:`AesopBenchError`, which the command line prints without a traceback, and four kinds of
it, so that a caller can act on what went wrong: only bad input is worth retrying image by image (the
evaluator does); a bad configuration, a missing file or a damaged store fails the same way for every image.
"""


class AesopBenchError(Exception):
    """A user-facing error; the command line prints its message without a traceback."""


class InputError(AesopBenchError):
    """An input image or tensor that cannot be used as it is (unreadable file, wrong size, range or channels):
    the other images may still be fine."""


class ConfigError(AesopBenchError):
    """An option, name or combination of settings that is not valid, found before or whatever the input."""


class MissingFileError(AesopBenchError):
    """A file or folder the run needs is not there (a set, a weights file, a run folder)."""


class StoreError(AesopBenchError):
    """A run folder or cache entry that is damaged, locked or written by something else."""
