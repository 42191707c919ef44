"""How the diarizer's thresholds were chosen, and what they give on clips they were not chosen on.

``.nox/bench/bin/python -m benchmarks.real_speech.tune`` (the bench venv, which
``nox -s scorers`` or ``nox -s bench`` syncs) runs the diarizer in-process on the AMI
clips (the 16-bit WAV copies in tests/fixtures/real_speech) over a grid of its four main
knobs, scores every setting with pyannote.metrics (collar 0, overlap scored), and
reports:

* the shipped defaults on every clip;
* the fixed fold: the best setting on the tuned clips, scored on the held-out ones;
* leave-one-out: for each clip, the best setting on the other eight, scored on that one.

It writes ``benchmarks/real_speech_tuning.md``. One speaker's turns closer than 0.3 s are
merged, as the step's writer merges them, so a setting's DER here is the benchmark's.
"""

from __future__ import annotations

import itertools
import wave
from dataclasses import replace
from pathlib import Path
from typing import Any

from benchmarks.real_speech import HELD_OUT, REFERENCE, TUNED
from benchmarks.real_speech import score as sc
from benchmarks.real_speech.run import ROOT

WAVS = ROOT / "tests" / "fixtures" / "real_speech"
OUT = ROOT / "benchmarks" / "real_speech_tuning.md"
#: Knobs of the analysis (each value needs the models run again) ...
STEPS = (2.5, 5.0)
ONSETS = (0.3, 0.35, 0.4, 0.5)
#: ... and of the decision (cheap).
THRESHOLDS = (0.4, 0.5, 0.6, 0.7, 0.8)
MIN_SPEAKERS = (0.5, 1.0, 2.0)


def read(path: Path) -> Any:
    """A 16-bit WAV as float32."""
    import numpy as np

    with wave.open(str(path), "rb") as w:
        pcm = w.readframes(w.getnframes())
    return np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0


def grid() -> dict[tuple[float, ...], dict[str, tuple[float, float, bool]]]:
    """(step, onset, threshold, min_speaker) -> clip -> (errors, speech, right count)."""
    from pyannote.core import Segment

    from signal4.stepkit.diarization import merge_turns
    from signal4.stepkit.speakers.pipeline import Diarizer, Settings, decide

    refs = sc.load_rttm(REFERENCE.read_text(encoding="utf-8"))
    audio = {name: read(WAVS / f"{name}.wav") for name in sorted(refs)}
    out: dict[tuple[float, ...], dict[str, tuple[float, float, bool]]] = {}
    for step, onset in itertools.product(STEPS, ONSETS):
        diarizer = Diarizer(2, Settings(step=step, onset=onset))
        analyses = {name: diarizer.analyse(x) for name, x in audio.items()}
        for threshold, least in itertools.product(THRESHOLDS, MIN_SPEAKERS):
            settings = replace(diarizer.settings, threshold=threshold, min_speaker=least)
            rows = {}
            for name, analysis in analyses.items():
                turns = decide(analysis, settings).turns if analysis else []
                hyp = sc.annotation(merge_turns(turns), name)
                scorer = sc.Scorer(collars=(0.0,))
                figures = scorer.add(refs[name], hyp, Segment(0.0, 30.0))["collar_0"]
                right = len(hyp.labels()) == len(refs[name].labels())
                rows[name] = (figures["der"] * figures["speech_s"], figures["speech_s"], right)
            out[(step, onset, threshold, least)] = rows
        print(f"step {step} onset {onset}: done", flush=True)
    return out


def total(rows: dict[str, tuple[float, float, bool]], clips: list[str]) -> tuple[float, int]:
    """Set DER (errors over speech) and right counts over ``clips``."""
    errors = sum(rows[c][0] for c in clips)
    speech = sum(rows[c][1] for c in clips)
    return errors / speech, sum(rows[c][2] for c in clips)


def best(results: dict[tuple[float, ...], Any], clips: list[str]) -> tuple[float, ...]:
    """The setting with the lowest set DER over ``clips`` (ties: the first in grid order)."""
    return min(results, key=lambda key: total(results[key], clips)[0])


def main() -> int:
    """Run the grid and write the tuning record."""
    from signal4.stepkit.speakers.pipeline import Settings

    results = grid()
    names = sorted(next(iter(results.values())))
    d = Settings()
    default = (d.step, d.onset, d.threshold, d.min_speaker)
    lines = [
        "# How the diarizer's thresholds were chosen",
        "",
        "From `python -m benchmarks.real_speech.tune` (in-process, the AMI clips, "
        "pyannote.metrics collar 0 with overlap scored). Knobs: chunk step (s), speech onset, "
        "clustering threshold (cosine distance), least speech of a speaker (s).",
        "",
        f"Grid: step {STEPS}, onset {ONSETS}, threshold {THRESHOLDS}, min_speaker {MIN_SPEAKERS}.",
        "",
    ]
    if default in results:
        der, right = total(results[default], names)
        lines += [f"**Shipped defaults** {default}: set DER {der:.3f}, counts right {right}/9.", ""]
    tuned, held = list(TUNED), list(HELD_OUT)
    key = best(results, tuned)
    t_der, t_right = total(results[key], tuned)
    h_der, h_right = total(results[key], held)
    lines += [
        "## Fixed fold",
        "",
        f"Best on the tuned clips ({', '.join(tuned)}): {key}, DER {t_der:.3f} there "
        f"({t_right}/{len(tuned)} counts); on the held-out clips ({', '.join(held)}): "
        f"**DER {h_der:.3f}** ({h_right}/{len(held)} counts).",
        "",
        "## Leave-one-out",
        "",
        "| held-out clip | setting chosen on the other eight | its DER there | DER on the clip "
        "| count right |",
        "|---|---|---:|---:|---:|",
    ]
    errors = speech = 0.0
    rights = 0
    for name in names:
        others = [c for c in names if c != name]
        key = best(results, others)
        row = results[key][name]
        errors, speech, rights = errors + row[0], speech + row[1], rights + row[2]
        lines.append(
            f"| `{name}` | {key} | {total(results[key], others)[0]:.3f} "
            f"| {row[0] / row[1]:.3f} | {'yes' if row[2] else 'no'} |"
        )
    lines += [
        "",
        f"Leave-one-out over the set: **DER {errors / speech:.3f}**, counts right {rights}/9 "
        "(each clip scored with a setting that never saw it).",
        "",
        "## Every setting",
        "",
        "| step | onset | threshold | min_speaker | set DER | counts right |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for key in sorted(results, key=lambda k: total(results[k], names)[0]):
        der, right = total(results[key], names)
        lines.append(f"| {key[0]} | {key[1]} | {key[2]} | {key[3]} | {der:.3f} | {right} |")
    OUT.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines[:40]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
