"""inv voices as a user types it: the free words, and one-line errors with exit 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from signal4.commands.voices import one_voice
from signal4.voices import registry
from tests.voices.helpers import person

ROOT = Path(__file__).resolve().parents[2]
INV = [str(Path(sys.executable).parent / "inv"), "--search-root", str(ROOT)]


def inv(*args: str, data: Path) -> subprocess.CompletedProcess[str]:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("SIGNAL4_")}
    env["SIGNAL4_DATA_DIR"] = str(data)
    return subprocess.run(
        [*INV, "voices", *args], capture_output=True, text=True, timeout=120, env=env, cwd=ROOT
    )


@pytest.mark.parametrize(
    ("args", "text"),
    [
        (("bogus",), "unknown action 'bogus'; use one of: list, enroll"),
        (("enroll",), "enroll takes 1 name(s): inv voices enroll NAME"),
        (("enroll", "Ada"), "enroll needs --item ID and --speaker LABEL, or --clip FILE"),
        (("enroll", "Ada", "--clip", "x.wav", "--item", "i"), "not both"),
        (("enroll", "Ada", "--clip", "no-such.wav"), "--clip no-such.wav: no such file"),
        (("enroll", "Ada Lovelace", "--item", "nope", "--speaker", "SPEAKER_00"), "unknown item"),
        (("enroll", "Ada", "-i", "nope", "-s", "SPEAKER_00"), "unknown item"),  # short flags
        (("rename", "Ada"), "rename takes 2 name(s): inv voices rename NAME NEW"),
        (("rename", "Ada", "Bo"), "no voice is called 'Ada'"),
        (("merge", "voice-0001", "voice-0002"), "no voice is called 'voice-0001'"),
        (("forget", "Ada", "--all"), "forget takes no --all"),
    ],
)
def test_mistakes_are_one_line_and_exit_2(args: tuple[str, ...], text: str, tmp_path: Path) -> None:
    proc = inv(*args, data=tmp_path / "data")
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and text in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout


def test_list_on_a_new_db_and_as_json(tmp_path: Path) -> None:
    proc = inv("list", data=tmp_path / "data")
    assert proc.returncode == 0 and "no named or recurring voices" in proc.stdout
    assert inv("--json", data=tmp_path / "data").stdout.strip() == "[]"


def _prints(*seconds: float) -> registry.Prints:
    found = [registry.Found(f"SPEAKER_{i:02d}", s, person(i)) for i, s in enumerate(seconds)]
    return registry.Prints("sha256:t", "t", found)  # type: ignore[arg-type]


def test_a_clip_must_hold_one_voice_with_enough_speech() -> None:
    assert one_voice(_prints(12.0, 0.4), "a.wav").voices[0].seconds == 12.0
    with pytest.raises(registry.VoiceError, match=r"holds 2 voices \(12.0 s, 4.0 s\)"):
        one_voice(_prints(12.0, 4.0), "a.wav")
    with pytest.raises(registry.VoiceError, match="too little speech of one voice"):
        one_voice(_prints(2.0), "a.wav")
    with pytest.raises(registry.VoiceError, match="found no voice"):
        one_voice(None, "a.wav")
