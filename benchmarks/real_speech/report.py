"""The benchmark record as Markdown (benchmarks/real_speech.md)."""

from __future__ import annotations

from typing import Any


def loads(values: list[float]) -> str:
    """A load average triple as text."""
    return ", ".join(f"{x:.2f}" for x in values)


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def real_table(real: dict[str, Any]) -> list[str]:
    """Per clip: DER at both collars with its split, the overlap floor, the count, the RTFs."""
    lines = [
        "| clip | fold | DER | missed | false alarm | confusion | overlap floor "
        "| DER, 0.25 s collar | speakers found / true | overlapping turn pairs "
        "| convert RTF | diarize RTF |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in real["clips"].items():
        c0, c25 = r["collar_0"], r["collar_0.25"]
        rtf = r["real_time_factor"]
        lines.append(
            f"| `{name}` | {r['fold'].replace('_', '-')} | {c0['der']:.3f} | {_pct(c0['missed'])} "
            f"| {_pct(c0['false_alarm'])} | {_pct(c0['confusion'])} | {r['overlap_floor']:.3f} "
            f"| {c25['der']:.3f} | {r['speakers']} / {r['true_speakers']} | {r['overlap_turns']} "
            f"| {rtf.get('convert', 0):.3f} | {rtf.get('diarize', max(rtf.values())):.3f} |"
        )
    s = real["set"]
    lines.append(
        f"| **set** | | **{s['collar_0']['der']:.3f}** | {_pct(s['collar_0']['missed'])} "
        f"| {_pct(s['collar_0']['false_alarm'])} | {_pct(s['collar_0']['confusion'])} "
        f"| {real['set_overlap_floor']:.3f} | {s['collar_0.25']['der']:.3f} "
        f"| {real['speaker_count_right']} / {len(real['clips'])} right | | | |"
    )
    lines.append(
        f"| mean of clips | | {real['mean_der']:.3f} | | | | {real['mean_overlap_floor']:.3f} "
        "| | | | | |"
    )
    return lines


def fold_lines(real: dict[str, Any]) -> list[str]:
    """DER over the tuned clips and over the held-out ones."""
    out = [
        "| fold | clips | DER | missed | false alarm | confusion | DER, 0.25 s collar |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for fold, f in real["folds"].items():
        c0 = f["collar_0"]
        out.append(
            f"| {fold.replace('_', '-')} | {', '.join(f['clips'])} | {c0['der']:.3f} "
            f"| {_pct(c0['missed'])} | {_pct(c0['false_alarm'])} | {_pct(c0['confusion'])} "
            f"| {f['collar_0.25']['der']:.3f} |"
        )
    return out


def espeak_lines(espeak: dict[str, Any]) -> list[str]:
    """The espeak-ng conversations and the sample."""
    out = [
        "| clip | voices | length | speakers found | DER | missed | false alarm | confusion "
        "| diarize step |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in espeak["clips"].items():
        out.append(
            f"| `{name}` | {r['true_speakers']} | {r['duration_s']:.0f} s | {r['speakers']} "
            f"| {r['der']:.3f} | {_pct(r['missed'])} | {_pct(r['false_alarm'])} "
            f"| {_pct(r['confusion'])} | {r['seconds']:.1f} s |"
        )
    out.append(
        f"| **conversations** | | "
        f"| {espeak['speaker_count_right']}/{len(espeak['clips']) - 1} right "
        f"({espeak['speaker_count_right_2_3']}/{espeak['clips_2_3']} of 2-3 voices) "
        f"| **{espeak['mean_der']:.3f}** (mean) | | | | |"
    )
    return out


def markdown(doc: dict[str, Any]) -> str:
    """The whole record."""
    real = doc["real"]
    lines = [
        "# Diarization on real speech: the record",
        "",
        f"- Date: {doc['date']}; command: `{doc['command']}`; task `{doc['task']}`; "
        f"wall time {doc['wall_s']} s",
        f"- Machine: {doc['machine']['cpus']} CPUs, Python {doc['machine']['python']}; "
        f"load average at start {loads(doc['machine']['load_average_at_start'])}",
        "- Scored with pyannote.metrics `DiarizationErrorRate(collar=0.0, skip_overlap=False)` "
        "(the headline; set DER = total errors / total reference speech) and with a 0.25 s "
        "collar; cpWER with MeetEval. Clips: AMI (CC BY 4.0) from pyannote.audio's test data "
        "(MIT), see `benchmarks/real_speech/NOTICE.md`.",
        "",
        "## Nine real AMI excerpts (30 s each)",
        "",
        *real_table(real),
        "",
        "RTF: the step's whole process (start-up and model loading included) over 30 s of audio.",
        "",
        "### Tuned and held-out clips",
        "",
        *fold_lines(real),
        "",
    ]
    if "long" in doc:
        long = doc["long"]
        rtf = long["real_time_factor"]
        lines += [
            "## Five minutes of real speech (the nine clips and `dev00` again, one after another)",
            "",
            f"- {long['duration_s']:.0f} s: convert {long['seconds']['convert']:.2f} s "
            f"(RTF {rtf['convert']:.4f}), {doc['task']} {long['seconds'][doc['task']]:.2f} s "
            f"(RTF **{rtf[doc['task']]:.4f}**, start-up included); load average after: "
            f"{', '.join(f'{x:.2f}' for x in long['load_average'])}",
            f"- DER {long['der']:.3f}; speakers found {long['speakers']} of "
            f"{long['true_speakers']} (AMI's speaker ids are the same across clips)",
            "",
        ]
    if "espeak" in doc:
        lines += [
            "## The espeak-ng set (benchmarks/conversations.py) and the bundled sample",
            "",
            *espeak_lines(doc["espeak"]),
            "",
        ]
    if "words" in doc:
        from benchmarks.real_speech import words

        lines += words.markdown(doc["words"])
    return "\n".join(lines) + "\n"
