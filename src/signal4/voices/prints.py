"""Voice prints as the registry keeps them: unit vectors of float32, checked, and packed
to bytes for the search (:mod:`signal4.voices.index`). Standard library only.
"""

from __future__ import annotations

import math
import sys
from array import array
from collections.abc import Iterable, Sequence

from signal4.errors import Signal4Error

#: A component of a unit print packed to a byte: round(x * SCALE), clipped to +-127, + 128.
#: Unit prints of 192 numbers rarely hold a component past 0.5; one that does is clipped
#: in the packed copy only (the search rescores its finds with the float32 print).
SCALE = 127 / 0.5
#: Fewest and most numbers a print may have (CAM++: 192).
MIN_DIM, MAX_DIM = 16, 4096


class BadPrint(Signal4Error):
    """A voice print that cannot be used: not numbers, NaN or infinite, of no length, or
    of another size than the model's others (exit 2)."""


def check(values: object, what: str) -> array[float]:
    """``values`` as a unit float32 print; :class:`BadPrint` naming ``what`` if it is no print."""
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        raise BadPrint(f"{what}: the voice print is not a list of numbers")
    if not MIN_DIM <= len(values) <= MAX_DIM:
        raise BadPrint(
            f"{what}: the voice print has {len(values)} numbers (from {MIN_DIM} to {MAX_DIM})"
        )
    try:
        floats = [float(v) for v in values]
    except (TypeError, ValueError):
        raise BadPrint(f"{what}: the voice print holds something that is not a number") from None
    if not all(math.isfinite(v) for v in floats):
        raise BadPrint(f"{what}: the voice print holds NaN or an infinite number")
    norm = math.sqrt(math.fsum(v * v for v in floats))
    if not norm > 1e-12:
        raise BadPrint(f"{what}: the voice print is all zeros")
    return array("f", (v / norm for v in floats))


def check_seconds(value: object, what: str) -> float:
    """A print's seconds of speech: a finite number >= 0."""
    try:
        seconds = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise BadPrint(f"{what}: its seconds of speech are not a number ({value!r})") from None
    if not math.isfinite(seconds) or seconds < 0:
        raise BadPrint(f"{what}: its seconds of speech are {value!r} (a number >= 0)")
    return seconds


def to_bytes(vec: array[float]) -> bytes:
    """float32, little-endian."""
    if sys.byteorder == "little":
        return vec.tobytes()
    swapped = array("f", vec)
    swapped.byteswap()
    return swapped.tobytes()


def from_bytes(data: bytes, what: str = "a stored voice print") -> array[float]:
    """A float32 little-endian print back; :class:`BadPrint` if it is damaged (a length
    that is no whole number of floats, NaN)."""
    if len(data) % 4 or not data:
        raise BadPrint(f"{what} is damaged ({len(data)} bytes); run: inv voices relabel --scan")
    vec = array("f")
    vec.frombytes(data)
    if sys.byteorder != "little":
        vec.byteswap()
    if not all(math.isfinite(v) for v in vec):
        raise BadPrint(f"{what} holds NaN or an infinite number; run: inv voices relabel --scan")
    return vec


def dot(a: Iterable[float], b: Iterable[float]) -> float:
    """The dot product (the cosine, for unit prints)."""
    return math.fsum(x * y for x, y in zip(a, b, strict=True))


def unit(vec: Sequence[float]) -> array[float]:
    """``vec`` scaled to unit length (all zeros stays zeros)."""
    norm = math.sqrt(math.fsum(v * v for v in vec))
    return array("f", (v / norm for v in vec)) if norm > 0 else array("f", vec)


def pack(vec: Sequence[float]) -> bytes:
    """A unit print as bytes for the search: each number round(x * SCALE), clipped to
    +-127, plus 128."""
    return bytes(min(255, max(1, round(v * SCALE) + 128)) for v in vec)
