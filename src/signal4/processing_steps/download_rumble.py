"""Download a Rumble video's audio (or, with --video, the video) with yt-dlp."""

from __future__ import annotations

import argparse
from typing import Any

from signal4.stepkit import ytdl
from signal4.stepkit.fetch import media_kept
from signal4.stepkit.step import Context, Step


def execute(options: argparse.Namespace, ctx: Context) -> dict[str, Any]:
    return ytdl.download(options, ctx, kind="rumble")


STEP = Step(
    name="download_rumble",
    description="Download a Rumble video's audio (or the video) with yt-dlp and record it.",
    add_arguments=ytdl.add_arguments,
    execute=execute,
    ready=ytdl.ready,
    stage="download",
    needs_content=False,
    outputs_kept=media_kept,
)

if __name__ == "__main__":
    raise SystemExit(STEP.main())
