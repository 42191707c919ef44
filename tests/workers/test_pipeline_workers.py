"""``inv pipeline --workers`` on a real Redis with a warm worker for every env of the pipeline.

The same plan as the local runner, one chain per item, all sent at once: every item is
done, a bad one fails alone (exit 1), the transcript is the local runner's byte for byte,
and a re-run sends nothing for what is done. Timeouts are failure guards only.
"""

from __future__ import annotations

import gzip
import os
import socket
import subprocess
import sys
import wave
from collections.abc import Iterator
from pathlib import Path

import pytest

from signal4.content.state import StateDB
from signal4.stepkit.fetch import file_content_id
from signal4.workers import broker as broker_mod
from tests.conftest import ROOT
from tests.workers.test_worker import Cluster, _free_port, _sync

pytestmark = pytest.mark.slow

ENVS = ("convert", "transcribe", "diarize", "stitch", "cleanup")
SAMPLE = ROOT / "samples" / "two_speakers" / "audio.wav"
GUARD = 1800  # seconds: only ever a failure guard
TRANSCRIPTS = ("transcript.vtt", "transcript.srt", "transcript.json.gz")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    if not Path("/usr/bin/redis-server").exists():
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    _sync(ROOT, ENVS)
    base = tmp_path_factory.mktemp("cluster")
    server = broker_mod.LocalBroker(base / "broker", _free_port())
    broker_mod.start(server)
    c = Cluster(server, base / "data")
    try:
        for env in ENVS:
            c.start_worker(env)
        yield c
    finally:
        for proc in c.procs:
            c.stop(proc)
        broker_mod.stop(server)


def _padded(path: Path, seconds: float) -> Path:
    """The sample with ``seconds`` of silence after it: the same speech, other bytes."""
    with wave.open(str(SAMPLE), "rb") as src:
        params = src.getparams()
        frames = src.readframes(src.getnframes())
    pad = b"\0" * (int(seconds * params.framerate) * params.sampwidth * params.nchannels)
    with wave.open(str(path), "wb") as out:
        out.setparams(params)
        out.writeframes(frames + pad)
    return path


def _inv(*args: str, data: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "invoke", "-r", str(ROOT), "pipeline", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "SIGNAL4_DATA_DIR": str(data), "NO_COLOR": "1", "COLUMNS": "250"},
        check=False,
        timeout=GUARD,
    )


def _transcripts(data: Path, cid: str) -> dict[str, bytes]:
    """The stitched transcript files of ``cid`` (the gzipped JSON decompressed)."""
    folder = data / "content" / cid
    return {
        name: gzip.decompress(raw) if name.endswith(".gz") else raw
        for name in TRANSCRIPTS
        for raw in [(folder / name).read_bytes()]
    }


def test_a_batch_on_workers_matches_the_local_runner(cluster: Cluster, tmp_path: Path) -> None:
    a = _padded(tmp_path / "a.wav", 0.5)
    b = _padded(tmp_path / "b.wav", 1.0)
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF not really a wave file at all\n" * 40)
    ids = {p.name: file_content_id(p) for p in (a, b, bad)}
    sources = [arg for p in (a, b, bad) for arg in ("--source", str(p))]

    got = _inv("--workers", "--broker", cluster.url(), *sources, data=cluster.data)
    assert got.returncode == 1, got.stdout + got.stderr
    assert "Traceback" not in got.stderr
    assert "pipeline: 3 item(s), 15 stage(s) to run, 0 done before; on warm workers" in got.stdout
    failed = [line for line in got.stdout.splitlines() if line.startswith("failed:")]
    assert failed == [f"failed: {ids['bad.wav']}"], got.stdout
    db = StateDB(f"sqlite:///{cluster.data / 'state.db'}")
    for name in ("a.wav", "b.wav"):
        assert db.is_done(ids[name], "compress"), got.stdout
    # every stage that ran is recorded by the runner, with the host its worker named
    runs = db.runs()
    ran = sorted((r.content_id, r.task, r.status) for r in runs)
    assert ran.count((ids["bad.wav"], "convert", "invalid_input")) == 1
    assert [r for r in ran if r[0] == ids["bad.wav"]] == [
        (ids["bad.wav"], "convert", "invalid_input")
    ]
    assert sum(1 for r in runs if r.content_id == ids["a.wav"] and r.status == "completed") == 5
    assert {r.host for r in runs} == {socket.gethostname()}

    # the local runner makes the same transcript of the same file, byte for byte
    local = tmp_path / "local-data"
    here = _inv("--jobs", "1", "--source", str(a), data=local)
    assert here.returncode == 0, here.stdout + here.stderr
    assert _transcripts(local, ids["a.wav"]) == _transcripts(cluster.data, ids["a.wav"])

    # again: only the failed item is sent; the done ones send nothing
    again = _inv("--workers", "--broker", cluster.url(), *sources, data=cluster.data)
    assert again.returncode == 1, again.stdout + again.stderr
    assert "pipeline: 3 item(s), 5 stage(s) to run, 10 done before" in again.stdout
    assert len(db.runs()) == len(runs) + 1
