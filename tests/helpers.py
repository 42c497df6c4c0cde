"""Small helpers the test modules share."""

import time
from collections.abc import Callable


def eventually(check: Callable[[], bool], timeout: float = 5.0, what: str = "not in time") -> float:
    """Poll ``check`` until it holds (an AssertionError naming ``what`` past ``timeout``); the seconds it took."""
    t0 = time.perf_counter()
    while not check():
        assert time.perf_counter() - t0 < timeout, what
        time.sleep(0.02)
    return time.perf_counter() - t0
