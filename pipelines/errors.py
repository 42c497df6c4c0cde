"""Exit codes a scheduler can act on, and the error that carries one (docs/operations.md)."""

from __future__ import annotations

EXIT_OK = 0  # published (or nothing to do)
EXIT_ERROR = 1  # a step failed; the next run resumes at it
EXIT_DATA = 2  # the data (or the config) is bad: a person must look
EXIT_GATE = 3  # the quality gate refused the new bundle; CURRENT unchanged
EXIT_LOCKED = 75  # another run holds the lock (EX_TEMPFAIL): try later


class NightlyError(RuntimeError):
    """A nightly run stopped; ``code`` is the process exit code."""

    def __init__(self, msg: str, code: int = EXIT_ERROR, record: dict | None = None) -> None:
        super().__init__(msg)
        self.code = code
        self.record = record or {}  # what the run learnt before it stopped (the gate's verdict), for its summary
