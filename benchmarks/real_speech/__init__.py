"""The diarization benchmark on real speech: nine 30 s AMI meeting excerpts, scored properly.

``python -m benchmarks.real_speech`` (in the ``bench`` venv: ``nox -s bench``) converts and
diarizes each clip with the pipeline's own steps, each in its env, and scores the RTTM
against ``reference.rttm`` with pyannote.metrics: DER with no collar and overlapping
speech scored (the headline), and with a 0.25 s collar, each split into missed speech,
false alarm and confusion; the speaker count; each clip's overlap floor (the least DER a
one-speaker-at-a-time diarizer can reach); each step's real-time factor, start-up
included. Then the same steps on the clips one after another (five minutes), the
generated espeak-ng conversations of ``benchmarks/conversations.py`` and the bundled
sample, and a conversation of separate recordings through transcribe and stitch, scored
with MeetEval's cpWER. It writes ``benchmarks/real_speech.json`` and ``.md``.

The clips (``clips/*.flac``, 16 kHz mono, lossless) and ``reference.rttm`` are AMI (CC BY
4.0) as packaged in pyannote.audio's test data (MIT); see ``NOTICE.md``.
"""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent
CLIPS = HERE / "clips"
REFERENCE = HERE / "reference.rttm"
NOTICE = HERE / "NOTICE.md"

#: The clips the diarizer's thresholds were chosen on, and the ones held out of that
#: choice (fixed before tuning; the benchmark reports both parts).
TUNED = ("dev00", "dev01", "trn03", "trn05", "trn06")
HELD_OUT = ("trn01", "trn02", "trn04", "trn09")


def clip_names() -> list[str]:
    """Every clip, by name, in order."""
    return sorted(p.stem for p in CLIPS.glob("*.flac"))
