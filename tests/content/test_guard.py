"""The per-content lock (signal4.content.guard): one holder at a time, a dead writer swept.

The other holder is a real second process, as a second step (or a warm worker) would be.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from signal4.content import settings
from signal4.content.guard import content_guard
from signal4.content.store import TMP_PREFIX

GUARD = 60.0  # seconds: only ever a failure guard

HOLDER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from signal4.content.guard import content_guard

    print("taking", flush=True)
    with content_guard(sys.argv[1]):
        Path(sys.argv[2]).touch()
        print("in", flush=True)
        sys.stdin.readline()  # hold it until told
    print("out", flush=True)
    """
)


def _holder(cid: str, entered: Path) -> subprocess.Popen[str]:
    """A process that holds ``cid``'s lock (``entered`` made once it has it) until told."""
    return subprocess.Popen(
        [sys.executable, "-c", HOLDER, cid, str(entered)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def _said(proc: subprocess.Popen[str]) -> str:
    assert proc.stdout is not None
    return proc.stdout.readline().strip()


def _waits_for(pid: int, lock: Path) -> bool:
    """Whether process ``pid`` waits for the flock of ``lock`` (Linux's /proc/locks)."""
    inode = str(lock.stat().st_ino)
    for line in Path("/proc/locks").read_text().splitlines():
        fields = line.split()
        if "->" not in fields:
            continue
        kind, _mode, _access, holder, device, *_ = fields[fields.index("->") + 1 :]
        if kind == "FLOCK" and holder == str(pid) and device.rsplit(":", 1)[-1] == inode:
            return True
    return False


def _until(what: str, check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + GUARD
    while not check():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.02)


def test_two_holders_of_one_content_take_turns(isolated_data: Path) -> None:
    lock = isolated_data / "locks" / "talk.lock"
    entered = isolated_data.parent / "entered"
    other: subprocess.Popen[str] | None = None

    def waiting(pid: int) -> bool:
        assert not entered.exists(), "the other process got in while the lock was held"
        return _waits_for(pid, lock)

    try:
        with content_guard("talk"):
            other = _holder("talk", entered)
            assert _said(other) == "taking"
            if Path("/proc/locks").is_file():
                _until("the other to wait for the lock", lambda: waiting(other.pid))
            else:  # no /proc/locks: give it the time to get past the lock (it must not)
                time.sleep(1.0)
            assert other.poll() is None and not entered.exists()  # still waiting
        # released: the other takes it, holds it until told, and lets it go
        out, _ = other.communicate(input="\n", timeout=GUARD)
        assert (out.split(), other.returncode) == (["in", "out"], 0)
    finally:
        if other is not None and other.poll() is None:
            other.kill()
            other.wait()
    # another content item is never held up by this one's lock
    with content_guard("talk"), content_guard("other-talk"):
        pass
    assert sorted(p.name for p in lock.parent.iterdir()) == ["other-talk.lock", "talk.lock"]


DEAD_WRITER = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    from signal4.content.guard import content_guard

    folder = Path(sys.argv[1])
    with content_guard(sys.argv[2]):
        (folder / "chunks").mkdir(parents=True)
        (folder / "audio.wav").write_bytes(b"kept")
        (folder / "chunks" / "000.wav").write_bytes(b"kept")
        (folder / "{tmp}audio.wav").write_bytes(b"half of it")
        (folder / "chunks" / "{tmp}001.wav").write_bytes(b"half")
        (folder / "{tmp}dir").mkdir()
        (folder / "{tmp}dir" / "part").write_bytes(b"half")
        os.kill(os.getpid(), signal.SIGKILL)  # killed mid-write, the lock held
    """
).format(tmp=TMP_PREFIX)


def test_the_next_holder_sweeps_what_a_killed_writer_left(isolated_data: Path) -> None:
    folder = settings.get().content_root / "talk"
    died = subprocess.run([sys.executable, "-c", DEAD_WRITER, str(folder), "talk"], check=False)
    assert died.returncode == -signal.SIGKILL
    assert (folder / f"{TMP_PREFIX}audio.wav").is_file()  # left behind
    # the lock died with its holder: taken at once, and what it left is swept
    with content_guard("talk") as swept:
        assert [p.relative_to(folder).as_posix() for p in swept] == [
            f"{TMP_PREFIX}audio.wav",
            f"{TMP_PREFIX}dir",  # with what is in it
            f"chunks/{TMP_PREFIX}001.wav",
        ]
        left = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))
        assert left == ["audio.wav", "chunks", "chunks/000.wav"]  # the outputs stay
    with content_guard("talk") as swept_again:
        assert swept_again == []


@pytest.mark.parametrize("cid", [None, "", "../talk", "a/b"])
def test_no_content_id_no_lock(isolated_data: Path, cid: str | None) -> None:
    with content_guard(cid) as swept:
        assert swept == []
    assert not (isolated_data / "locks").exists()
