"""The project's error type: every message names the file or value and the fix."""


class AesopBenchError(Exception):
    """A user-facing error; the command line prints its message without a traceback."""
