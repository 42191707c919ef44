"""The one output channel for the developer tools: a rich console.

rich honours NO_COLOR and FORCE_COLOR itself. Processing steps do not use this module.
"""

from __future__ import annotations

import functools
import platform
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console


@functools.cache
def console() -> Console:
    """Return the shared console (stdout)."""
    from rich.console import Console

    return Console(highlight=False)


@functools.cache
def err_console() -> Console:
    """Return the console for diagnostics (stderr)."""
    from rich.console import Console

    return Console(stderr=True, highlight=False)


def banner(title: str) -> None:
    """Print a one-line banner with the interpreter that runs the tool."""
    console().print(f"[bold]{title}[/] · python {platform.python_version()} ({sys.executable})")


def human_bytes(n: float) -> str:
    """Format a byte count the way `du -h` does."""
    for unit in ("B", "K", "M", "G"):
        if abs(n) < 1024 or unit == "G":
            return f"{n:.0f}{unit}" if unit in ("B", "K") else f"{n:.1f}{unit}"
        n /= 1024
    return f"{n:.1f}G"  # pragma: no cover
