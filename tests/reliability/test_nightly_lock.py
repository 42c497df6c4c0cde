"""The nightly lock is an OS file lock: a live holder blocks, a dead one never does, whatever its pid."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines.errors import EXIT_LOCKED, NightlyError
from pipelines.nightly import Lock


def test_a_second_run_is_refused_while_the_first_holds_the_lock(tmp_path: Path) -> None:
    path = tmp_path / "nightly.lock"
    with Lock(path):
        assert path.read_text() == str(os.getpid())
        with pytest.raises(NightlyError) as e, Lock(path):
            pass
        assert e.value.code == EXIT_LOCKED and str(os.getpid()) in str(e.value)
    assert path.read_text() == ""  # a clean exit
    with Lock(path):  # and it can be taken again
        pass


@pytest.mark.parametrize("left_behind", ["1", "", "not-a-pid", None])
def test_a_lock_left_by_a_dead_run_is_taken_over(tmp_path: Path, left_behind: str | None,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    """PID 1 (a container's recycled pid, alive here), an empty file from a crash between create and
    write, garbage: none of them holds the OS lock, so none of them blocks."""
    path = tmp_path / "nightly.lock"
    if left_behind is not None:
        path.write_text(left_behind)
    with Lock(path):
        pass
    assert ("stale lock" in caplog.text) == bool(left_behind)


def test_a_killed_holder_releases_the_lock(tmp_path: Path) -> None:
    path = tmp_path / "nightly.lock"
    code = ("import sys, time; from pathlib import Path; from pipelines.nightly import Lock\n"
            "with Lock(Path(sys.argv[1])):\n    print('held', flush=True); time.sleep(60)")
    p = subprocess.Popen([sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE, text=True,
                         cwd=Path(__file__).parents[2])
    assert p.stdout.readline().strip() == "held"
    with pytest.raises(NightlyError), Lock(path):
        pass
    p.kill()
    p.wait()
    with Lock(path):  # the kernel dropped the dead process's lock
        pass
