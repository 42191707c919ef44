"""Exact search of many voice prints in pure Python: one big-integer product per column.

The runner has no numpy, and a registry of 10,000 prints searched one dot product at a
time in Python takes about half a second per voice. Packed to a byte per number
(:func:`signal4.voices.prints.pack`), the prints become 192 *columns*: column ``j`` is one
integer holding number ``j`` of every print, each in its own 32-bit lane. A query's dot
product with every print at once is then ``sum(q[j] * column[j])``: 192 multiplications
of a big integer by a small one, which CPython does in C, and no lane spills into the
next (a lane's sum stays under 2**23; a bias of 2**31 per lane keeps it positive). The
packed scores are within :data:`PACKED_ERROR` of the true cosine; every print that comes
within that of the floor is scored again exactly with its float32 copy, so the search
returns what a float search would (measured in benchmarks/voices.md).
"""

from __future__ import annotations

import sys
from array import array
from collections.abc import Sequence

from signal4.voices.prints import SCALE, dot, from_bytes, unit

#: A bound on |packed score - cosine| for unit prints of up to 256 numbers without a
#: component past 0.5: each packed number is off by at most 0.5/SCALE, and
#: |sum(a.e_b + b.e_a + e_a.e_b)| <= 2 * (0.5/SCALE) * sqrt(256) + tiny.
PACKED_ERROR = 0.07
_LANE = 32
_BIAS = 1 << 31
#: How many changed prints are written into the columns in place before they are built
#: again from the rows (each in-place change costs a pass over every column).
_REBUILD_AFTER = 8
_CODE = "I" if array("I").itemsize == 4 else "L"


class Index:
    """The prints of one embedding model (one per person), searched exactly."""

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self.keys: list[int] = []
        self._lane: dict[int, int] = {}
        self._rows = bytearray()
        #: Each print as given (float32 bytes of any length scale), and at unit length
        #: once a search needed it.
        self._exact: list[bytes] = []
        self._floats: dict[int, array[float]] = {}
        self._columns: list[int] | None = None
        self._dirty: set[int] = set()
        self._bias = 0

    def __len__(self) -> int:
        return len(self.keys)

    def put(self, key: int, exact: bytes, packed: bytes) -> None:
        """Add the print of ``key``, or replace it: ``exact`` as float32 little-endian bytes
        (any length: it is scaled to unit length when a search rescores it), ``packed`` as
        :func:`~signal4.voices.prints.pack` gives it."""
        if len(exact) != 4 * self.dim or len(packed) != self.dim:
            raise ValueError(f"a print of {len(packed)} numbers in an index of {self.dim}")
        lane = self._lane.get(key)
        if lane is None:
            lane = len(self.keys)
            self._lane[key] = lane
            self.keys.append(key)
            self._rows += packed
            self._exact.append(exact)
        else:
            self._rows[lane * self.dim : (lane + 1) * self.dim] = packed
            self._exact[lane] = exact
            self._floats.pop(lane, None)
        self._dirty.add(lane)

    def _float(self, lane: int) -> array[float]:
        vec = self._floats.get(lane)
        if vec is None:
            vec = self._floats[lane] = unit(from_bytes(self._exact[lane]))
        return vec

    def _build(self) -> list[int]:
        """The columns, with every changed row written in (in place when few changed)."""
        n, d = len(self.keys), self.dim
        columns = self._columns
        if columns is not None and len(self._dirty) <= _REBUILD_AFTER:
            for lane in sorted(self._dirty):
                row = self._rows[lane * d : (lane + 1) * d]
                shift = _LANE * lane
                for j in range(d):
                    old = (columns[j] >> shift) & 0xFFFF_FFFF
                    columns[j] += (row[j] - old) << shift
        else:
            wide = bytearray(4 * n)
            columns = []
            for j in range(d):
                wide[0::4] = self._rows[j::d]
                columns.append(int.from_bytes(wide, "little"))
        self._bias = int.from_bytes(b"\0\0\0\x80" * n, "little")
        self._columns = columns
        self._dirty.clear()
        return columns

    def search(self, vec: Sequence[float], floor: float) -> list[tuple[float, int]]:
        """(cosine, key) of every print whose cosine with ``vec`` is at least ``floor``,
        best first (``vec`` a unit print of the index's size)."""
        n = len(self.keys)
        if not n:
            return []
        columns = self._build() if self._columns is None or self._dirty else self._columns
        q = [min(127, max(-127, round(v * SCALE))) for v in vec]
        acc = self._bias
        for j, c in enumerate(q):
            if c:
                acc += c * columns[j]
        lanes = array(_CODE)
        lanes.frombytes(acc.to_bytes(4 * n, "little"))
        if sys.byteorder != "little":
            lanes.byteswap()
        # a lane holds sum(q * (p + 128)) + bias: the packed dot product plus a constant
        base = _BIAS + 128 * sum(q)
        cut = base + (floor - PACKED_ERROR) * SCALE * SCALE
        found = [(dot(vec, self._float(i)), self.keys[i]) for i, x in enumerate(lanes) if x >= cut]
        return sorted((hit for hit in found if hit[0] >= floor), reverse=True)
