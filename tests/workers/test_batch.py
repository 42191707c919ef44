"""The warm-worker runner (signal4.workers.batch): a plan as Celery chains, all sent at once.

The tests run plans on real workers on the session's Redis (tests/workers/conftest.py):
the light workers on database 0, and a worker for every env of the pipeline on a database
of its own.
"""

from __future__ import annotations

import gzip
import json
import os
import socket
import subprocess
import sys
import wave
from collections.abc import Iterator
from pathlib import Path

import pytest

from signal4.content.guard import content_guard
from signal4.content.state import StateDB
from signal4.envs import layout, manifest
from signal4.errors import Interrupted
from signal4.run import plan as plan_mod
from signal4.run.runner import Event
from signal4.stepkit.fetch import file_content_id
from signal4.workers import batch as warm
from signal4.workers import submit as submit_mod
from tests.conftest import ROOT, sync_envs
from tests.helpers.cluster import (
    LIGHT_ENVS,
    READY,
    SAMPLE,
    Cluster,
    free_port,
    inv,
    meta_once,
    no_partial_output,
    transcribed,
    wait_for,
)
from tests.helpers.steps import db, store


def _light_plan(m: manifest.Manifest, cid: str) -> plan_mod.Plan:
    """One item: convert (of the sample), stitch and cleanup_and_compress of ``cid``."""
    stages = [
        plan_mod.Stage(m.task("convert"), ["--input", str(SAMPLE)]),
        plan_mod.Stage(m.task("stitch"), []),
        plan_mod.Stage(m.task("cleanup_and_compress"), []),
    ]
    return plan_mod.Plan([plan_mod.Item(str(SAMPLE), "sample", stages, content=cid)])


@pytest.mark.slow
def test_a_chain_across_three_envs_completes(shared: Cluster, m: manifest.Manifest) -> None:
    transcribed("talk")
    events: list[Event] = []
    runner = warm.WorkerBatch(
        m, _light_plan(m, "talk"), db=db(), broker=shared.url(), on_event=events.append
    )
    [result] = runner.run()
    assert result.status == "done", result
    assert result.ran == ["convert", "stitch", "cleanup_and_compress"]
    ends = [e.outcome for e in events if e.kind == "end"]
    assert [o.status for o in ends if o is not None] == ["completed"] * 3
    assert ends[0] is not None and ends[0].result["chunks"] == 1
    # the runner records every stage's run, with the host the worker named
    runs = [r for r in db().runs() if r.content_id == "talk"]
    assert sorted(r.task for r in runs) == ["cleanup_and_compress", "convert", "stitch"]
    assert {r.host for r in runs} == {socket.gethostname()}
    # the workers recorded each stage's provenance: their host, the lock they announce
    records = db().provenance()["talk"]
    assert sorted(records) == ["compress", "convert", "stitch"]
    assert {(r["host"], r["lock"]) for r in records.values()} == {
        (socket.gethostname(), layout.lock_hash(m))
    }
    assert records["convert"]["params"] == {"chunk_seconds": 300.0, "chunk_overlap": 2.0}
    stored = json.loads((store().folder("talk") / "storage_manifest.json").read_text())
    assert stored["provenance"] == records
    # a done stage is not sent; an item with nothing to run sends nothing (no broker needed)
    again = _light_plan(m, "talk")
    again.items[0].stages[0].done = True
    [result] = warm.WorkerBatch(m, again, db=db(), broker=shared.url()).run()
    assert (result.status, result.ran) == ("done", ["stitch", "cleanup_and_compress"])
    for stage in again.items[0].stages:
        stage.done = True
    down = f"redis://127.0.0.1:{free_port()}/0"
    [result] = warm.WorkerBatch(m, again, db=db(), broker=down).run()
    assert (result.status, result.ran) == ("done", [])
    assert len([r for r in db().runs() if r.content_id == "talk"]) == 5
    folder = store().folder("talk")
    assert (folder / "transcript.vtt").read_text().startswith("WEBVTT")
    assert (folder / "audio.opus").is_file() and (folder / "transcript.json.gz").is_file()
    assert not (folder / "audio.wav").exists() and not (folder / "chunks").exists()
    assert db().is_done("talk", "compress")
    no_partial_output(folder)


@pytest.mark.slow
def test_ctrl_c_revokes_what_the_batch_sent(shared: Cluster, m: manifest.Manifest) -> None:
    for cid in ("stop-a", "stop-b"):
        transcribed(cid)
    plan = plan_mod.Plan([*_light_plan(m, "stop-a").items, *_light_plan(m, "stop-b").items])

    def ctrl_c_at_the_first_start(e: Event) -> None:
        if e.kind == "start":
            raise KeyboardInterrupt

    said: list[str] = []
    runner = warm.WorkerBatch(
        m, plan, db=db(), broker=shared.url(), on_event=ctrl_c_at_the_first_start, say=said.append
    )
    # holding stop-a's lock keeps its convert running (waiting for the lock) on the one
    # convert worker, and stop-b's queued behind it, until the Ctrl-C
    with content_guard("stop-a"), pytest.raises(Interrupted) as err:
        runner.run()
    assert err.value.code == 130
    assert any("revoked 6 task(s)" in line and "1 running" in line for line in said), said
    assert [r.status for r in runner.results.values()] == ["interrupted"] * 2
    running, queued = (ch.results[0] for ch in runner.chains)
    assert meta_once(running, READY)["status"] == "REVOKED"  # type: ignore[index]
    # the item still queued is discarded by its worker when it reaches it, never run
    meta = wait_for("the queued convert to end", lambda: meta_once(queued, READY))
    assert meta["status"] == "REVOKED"
    stopped = ("stop-a", "stop-b")
    runs = [(r.content_id, r.task, r.status) for r in db().runs() if r.content_id in stopped]
    # the runner recorded the stopped one: interrupted, not failed
    assert runs == [("stop-a", "convert", "interrupted")]


@pytest.mark.slow
def test_the_pipeline_refuses_an_env_no_worker_serves(shared: Cluster) -> None:
    # the light workers run, transcribe and diarize have none: refused before anything is sent
    got = inv("pipeline", "--workers", "--broker", shared.url())
    assert got.returncode == 2 and "no live worker serves env" in got.stderr, got.stderr
    assert "inv worker " in got.stderr and "Traceback" not in got.stderr
    listed = inv("workers", "--broker", shared.url())
    assert listed.returncode == 0
    assert all(env in listed.stdout for env in LIGHT_ENVS), listed.stdout


@pytest.mark.slow
def test_two_machines_serve_one_pipeline(
    shared: Cluster, m: manifest.Manifest, second_checkout: Path
) -> None:
    # machine B: a second checkout with its own synced envs
    other = second_checkout
    sync_envs(other, ("stitch", "cleanup"))  # (convert stays unsynced there)
    db_index = shared.fresh_db()
    url = shared.url(db_index)
    a = shared.start_worker("convert", db_index=db_index)
    b_stitch = shared.start_worker("stitch", root=other, db_index=db_index)
    b_cleanup = shared.start_worker("cleanup", root=other, db_index=db_index)
    announced = {w.env: w for w in submit_mod.live_workers(url)}
    assert announced["stitch"].root == str(other) and announced["convert"].root == str(ROOT)

    transcribed("shared-talk")
    runner = warm.WorkerBatch(m, _light_plan(m, "shared-talk"), db=db(), broker=url)
    [result] = runner.run()
    assert result.status == "done", result
    done = {w.env: w.done for w in submit_mod.live_workers(url)}
    assert done["convert"] >= 1 and done["stitch"] >= 1 and done["cleanup"] >= 1
    folder = store().folder("shared-talk")
    assert (folder / "transcript.vtt").is_file() and (folder / "audio.opus").is_file()
    for proc in (a, b_stitch, b_cleanup):
        assert shared.stop(proc) == 0


ENVS = ("convert", "transcribe", "diarize", "stitch", "cleanup")


TRANSCRIPTS = ("transcript.vtt", "transcript.srt", "transcript.json.gz")


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


def _transcripts(data: Path, cid: str) -> dict[str, bytes]:
    """The stitched transcript files of ``cid`` (the gzipped JSON decompressed)."""
    folder = data / "content" / cid
    return {
        name: gzip.decompress(raw) if name.endswith(".gz") else raw
        for name in TRANSCRIPTS
        for raw in [(folder / name).read_bytes()]
    }


def _pipeline(*args: str, data: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "invoke", "-r", str(ROOT), "pipeline", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "SIGNAL4_DATA_DIR": str(data), "NO_COLOR": "1", "COLUMNS": "250"},
        check=False,
        timeout=1800,  # a failure guard only
    )


@pytest.fixture
def every_env(cluster: Cluster, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """(broker URL, data folder) of a worker for every env of the pipeline, on a Redis
    database and a data folder of their own."""
    db_index = cluster.fresh_db()
    data = tmp_path / "workers-data"
    procs = [cluster.start_worker(env, db_index=db_index, data=data) for env in ENVS]
    try:
        yield cluster.url(db_index), data
    finally:
        for proc in procs:
            cluster.stop(proc)


@pytest.mark.slow
def test_a_batch_on_workers_matches_the_local_runner(
    every_env: tuple[str, Path], tmp_path: Path
) -> None:
    url, data = every_env
    a = _padded(tmp_path / "a.wav", 0.5)
    b = _padded(tmp_path / "b.wav", 1.0)
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF not really a wave file at all\n" * 40)
    ids = {p.name: file_content_id(p) for p in (a, b, bad)}
    sources = [arg for p in (a, b, bad) for arg in ("--source", str(p))]

    got = _pipeline("--workers", "--broker", url, *sources, data=data)
    assert got.returncode == 1, got.stdout + got.stderr
    assert "Traceback" not in got.stderr
    assert "pipeline: 3 item(s), 15 stage(s) to run, 0 done before; on warm workers" in got.stdout
    failed = [line for line in got.stdout.splitlines() if line.startswith("failed:")]
    assert failed == [f"failed: {ids['bad.wav']}"], got.stdout
    db = StateDB(f"sqlite:///{data / 'state.db'}")
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
    here = _pipeline("--jobs", "1", "--source", str(a), data=local)
    assert here.returncode == 0, here.stdout + here.stderr
    assert _transcripts(local, ids["a.wav"]) == _transcripts(data, ids["a.wav"])

    # again: only the failed item is sent; the done ones send nothing
    again = _pipeline("--workers", "--broker", url, *sources, data=data)
    assert again.returncode == 1, again.stdout + again.stderr
    assert "pipeline: 3 item(s), 5 stage(s) to run, 10 done before" in again.stdout
    assert len(db.runs()) == len(runs) + 1
