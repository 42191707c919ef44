"""The warm-worker runner (signal4.workers.batch): a plan as Celery chains, all sent at once.

Fast tests follow chains whose results are stand-ins. Slow ones run plans on real
workers on the session's Redis (tests/workers/conftest.py): the light workers on
database 0, and a worker for every env of the pipeline on a database of its own.
"""

from __future__ import annotations

import gzip
import json
import os
import socket
import subprocess
import sys
import time
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from signal4.codes import ItemStatus, Status
from signal4.content.guard import content_guard
from signal4.content.state import StateDB
from signal4.envs import layout, manifest
from signal4.envs.manifest import Manifest
from signal4.errors import Interrupted
from signal4.run import plan as plan_mod
from signal4.run.runner import Event
from signal4.stepkit.fetch import file_content_id
from signal4.workers import batch as warm
from signal4.workers import submit as submit_mod
from signal4.workers import wire
from tests.conftest import ROOT, sync_envs
from tests.helpers.cluster import (
    LIGHT_ENVS,
    READY,
    SAMPLE,
    Cluster,
    done_by,
    free_port,
    inv,
    meta_once,
    no_partial_output,
    transcribed,
    wait_for,
)
from tests.helpers.steps import db, store


def test_a_stage_is_sent_with_its_items_content_and_rewrite(project_manifest: Manifest) -> None:
    stitch = plan_mod.Stage(project_manifest.task("stitch"), ["--x", "1"])
    item = plan_mod.Item("a.wav", "a", [stitch], content="file-a-1")
    assert warm.stage_args(item, stitch) == ["--x", "1", "--content", "file-a-1"]
    stitch.done = True
    stitch.rerun("env changed")  # done, but to be made again
    assert warm.stage_args(item, stitch) == ["--x", "1", "--content", "file-a-1", "--rewrite"]
    own = plan_mod.Stage(project_manifest.task("stitch"), ["--content", "b", "--rewrite"])
    assert warm.stage_args(item, own) == ["--content", "b", "--rewrite"]  # never twice
    # a video before its download: the worker takes the id from the previous result
    video = plan_mod.Item("https://v", "https://v", [stitch])
    assert "--content" not in warm.stage_args(video, stitch)


def test_where_a_stage_ran_is_the_host_its_result_names_else_its_workers() -> None:
    assert warm.host_of({"host": "box-a"}, "stitch-1@box-b") == "box-a"
    assert warm.host_of({}, "stitch-1@box-b") == "box-b"
    assert warm.host_of({"host": ""}, "stitch-1@") is None
    assert warm.host_of({}, "box-c") == "box-c"
    assert warm.host_of({}, None) is None


def _two_stage_plan(m: Manifest, *names: str) -> plan_mod.Plan:
    return plan_mod.Plan(
        [
            plan_mod.Item(
                f"{n}.wav",
                n,
                [
                    plan_mod.Stage(m.task("stitch"), []),
                    plan_mod.Stage(m.task("cleanup_and_compress"), []),
                ],
                content=n,
            )
            for n in names
        ]
    )


def test_items_with_nothing_to_send_end_at_once_without_a_broker(
    project_manifest: Manifest,
) -> None:
    plan = _two_stage_plan(project_manifest, "done", "bad")
    for stage in plan.items[0].stages:
        stage.done = True
    plan.items[1].error = "the feed lists it without media"
    down = f"redis://127.0.0.1:{free_port()}/0"
    runner = warm.WorkerBatch(project_manifest, plan, db=db(), broker=down)
    runner.check()  # nothing to send: the broker is not asked
    done, bad = runner.run()
    assert (done.status, done.ran) == (ItemStatus.DONE, [])
    assert (bad.status, bad.error, bad.exit_code) == (
        ItemStatus.FAILED,
        "the feed lists it without media",
        1,
    )
    assert runner.chains == [] and db().runs() == []
    # with something to send, a broker that does not answer is refused before sending
    todo = _two_stage_plan(project_manifest, "todo")
    with pytest.raises(wire.BrokerUnavailable):
        warm.WorkerBatch(project_manifest, todo, db=db(), broker=down).run()


class Sent:
    """One sent stage's Celery result: the states its backend answers with, in turn."""

    def __init__(self, *metas: dict[str, Any]) -> None:
        self.id = f"task-{id(self)}"
        self.metas = list(metas)
        self.backend = self
        self.result: Any = None

    def get_task_meta(self, task_id: str) -> dict[str, Any]:
        self.reads = getattr(self, "reads", 0) + 1
        assert self.reads < 10_000, "the runner waits for a stage it should not"  # a guard
        meta = self.metas.pop(0) if len(self.metas) > 1 else self.metas[0]
        if meta["status"] in submit_mod.READY_STATES:
            self.result = meta["result"]
        return meta


def test_the_runner_follows_each_chain_and_records_every_stage_as_it_ends(
    project_manifest: Manifest,
) -> None:
    m = project_manifest
    plan = _two_stage_plan(m, "good", "refused")
    events: list[Event] = []
    runner = warm.WorkerBatch(
        m, plan, db=db(), broker="redis://127.0.0.1:1/0", on_event=events.append, poll=0.0
    )
    good, refused = plan.items
    started = {"status": "STARTED", "result": {"hostname": "stitch-1@box-a", "pid": 7}}
    runner.chains = [
        warm._Chain(
            good,
            good.pending,
            [
                Sent(
                    {"status": "PENDING", "result": None},
                    started,
                    {
                        "status": "SUCCESS",
                        "result": {"status": "completed", "content": "good", "seconds": 1.5},
                    },
                ),
                # started and ended between two looks; its result names its host
                Sent({"status": "SUCCESS", "result": {"status": "completed", "host": "box-b"}}),
            ],
        ),
        warm._Chain(
            refused,
            refused.pending,
            [
                Sent(
                    {
                        "status": "SUCCESS",
                        "result": {"status": "invalid_input", "error": "no words"},
                    }
                ),
                Sent({"status": "PENDING", "result": None}),  # never run: not awaited
            ],
        ),
    ]
    runner._follow(runner.chains)
    ok, failed = (runner.results[id(i)] for i in plan.items)
    assert (ok.status, ok.ran) == (ItemStatus.DONE, ["stitch", "cleanup_and_compress"])
    assert all(s.done for s in good.stages)
    assert (failed.status, failed.exit_code, failed.ran) == (ItemStatus.FAILED, 2, ["stitch"])
    assert failed.error == "stitch invalid_input: no words"
    kinds = [(e.kind, e.item.content, e.stage.task.name) for e in events]
    assert kinds.count(("start", "good", "stitch")) == 1
    assert ("start", "refused", "cleanup_and_compress") not in kinds
    ends = [e for e in events if e.kind == "end"]
    assert [(e.item.content, e.outcome.status) for e in ends if e.outcome] == [
        ("refused", Status.INVALID_INPUT),
        ("good", Status.COMPLETED),
        ("good", Status.COMPLETED),
    ]
    assert next(e.outcome for e in ends if e.item is good).duration == 1.5  # the step's own
    runs = sorted((r.content_id, r.task, r.status, r.host) for r in db().runs())
    assert runs == [
        ("good", "cleanup_and_compress", "completed", "box-b"),
        ("good", "stitch", "completed", "box-a"),
        # no worker named: the runner's own host
        ("refused", "stitch", "invalid_input", socket.gethostname()),
    ]


def test_the_runner_says_where_stages_wait_when_nothing_moves() -> None:
    said: list[str] = []
    quiet = warm._Quiet(said.append)
    quiet.check([])
    assert said == []  # not yet
    quiet.since = quiet.told = time.monotonic() - quiet.patience - 1
    stitch = plan_mod.Stage(manifest.load(ROOT).task("stitch"), [])
    item = plan_mod.Item("a.wav", "a", [stitch], content="a")
    waiting = warm._Chain(item, [stitch], [None])
    running = warm._Chain(item, [stitch], [None], began=time.monotonic())
    quiet.check([waiting, running, waiting])
    [line] = said
    assert line.startswith("pipeline: no stage has ended or started for ")
    assert line.endswith(
        "1 running, queued: 2 on signal4.stitch (inv workers lists who serves them)"
    )
    quiet.told -= quiet.patience + 1  # one patience later: not yet, it waits twice as long
    quiet.check([waiting])
    assert len(said) == 1
    quiet.told -= quiet.patience
    quiet.check([waiting])
    assert len(said) == 2 and said[1].endswith(
        "0 running, queued: 1 on signal4.stitch (inv workers lists who serves them)"
    )
    quiet.moved()
    assert quiet.gap == quiet.patience


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
    workers = {"convert": a, "stitch": b_stitch, "cleanup": b_cleanup}
    announced = {w.env: w for w in submit_mod.live_workers(url)}
    assert announced["stitch"].root == str(other) and announced["convert"].root == str(ROOT)

    transcribed("shared-talk")
    runner = warm.WorkerBatch(m, _light_plan(m, "shared-talk"), db=db(), broker=url)
    [result] = runner.run()
    assert result.status == "done", result
    # each worker counts its step after the step's result is stored: wait for the counts
    wait_for(
        "each machine's workers to count the stage they ran",
        lambda: all(done_by(url, f"{env}-{proc.pid}@") >= 1 for env, proc in workers.items()),
    )
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
