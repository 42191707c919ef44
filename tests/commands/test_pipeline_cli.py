"""`inv pipeline` on the bundled sample through the real envs, then a resumed run."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from signal4.run import plan as pipeline
from tests.conftest import ROOT

pytestmark = pytest.mark.slow


def _inv(*args: str, data: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SIGNAL4_DATA_DIR": str(data), "NO_COLOR": "1", "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "invoke", "-r", str(ROOT), "pipeline", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        check=False,
    )


def test_pipeline_on_the_sample_then_resumed(isolated_data: Path) -> None:
    # --sync: on a fresh clone the envs do not exist yet (the README's main job syncs them).
    done = _inv("--sync", data=isolated_data)
    assert done.returncode == 0, done.stdout + done.stderr
    folder = next((isolated_data / "content").iterdir())
    assert str(folder / "transcript.vtt") in done.stdout
    doc = json.loads(gzip.decompress((folder / "transcript.json.gz").read_bytes()))
    assert len(doc["speakers"]) == 2
    text = {
        s["speaker"]: " ".join(x["text"] for x in doc["segments"] if x["speaker"] == s["speaker"])
        for s in doc["segments"]
    }
    assert "weather" in text[doc["segments"][0]["speaker"]].lower()
    assert any("wall" in t.lower() for sp, t in text.items() if sp != doc["segments"][0]["speaker"])
    assert (folder / "transcript.vtt").read_text().startswith("WEBVTT")

    kept = sorted(p.name for p in folder.iterdir())
    again = _inv("--source", str(ROOT / pipeline.SAMPLE), data=isolated_data)
    assert again.returncode == 0, again.stdout + again.stderr
    # a finished item is skipped whole: convert too, so audio.wav and chunks do not come back
    assert "0 stage(s) to run, 5 done before" in again.stdout
    assert sorted(p.name for p in folder.iterdir()) == kept
    assert "audio.wav" not in kept


def test_two_pipelines_on_one_file_take_turns(isolated_data: Path, tmp_path: Path) -> None:
    import shutil

    from signal4.content.state import StateDB

    src = tmp_path / "same.wav"
    shutil.copy(ROOT / pipeline.SAMPLE, src)
    env = {**os.environ, "SIGNAL4_DATA_DIR": str(isolated_data), "NO_COLOR": "1"}
    cmd = [sys.executable, "-m", "invoke", "-r", str(ROOT), "pipeline", "--source", str(src)]
    runs = [
        subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        for _ in range(2)
    ]
    outputs = [r.communicate(timeout=600)[0].decode() for r in runs]
    assert [r.returncode for r in runs] == [0, 0], outputs
    [folder] = list((isolated_data / "content").iterdir())
    item = StateDB(f"sqlite:///{isolated_data / 'state.db'}").get(folder.name)
    assert item is not None
    assert {s.stage: s.status for s in item.steps} == dict.fromkeys(
        ("convert", "transcribe", "diarize", "stitch", "compress"), "done"
    )
    assert (folder / "transcript.json.gz").is_file()
    assert not (folder / "chunks.json").exists()  # compressed away, not written back


def test_missing_file_is_exit_2(isolated_data: Path) -> None:
    got = _inv("--source", "no-such-file.wav", data=isolated_data)
    assert got.returncode == 2 and "no such file" in got.stderr
