"""Signal handlers held for the length of a ``with`` block, on the main thread only.

The dispatcher, the syncer and the batch runner each catch SIGINT and SIGTERM while they
wait for their children; this is the one way they install and restore the handlers.
Standard library only.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from types import FrameType

Handler = Callable[[int, FrameType | None], object]
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def handling(handler: Handler, sigs: Sequence[signal.Signals] = STOP_SIGNALS) -> Iterator[None]:
    """Run ``handler`` for ``sigs`` inside the block; put the old handlers back after it.

    Off the main thread signals are not ours to catch (Python delivers them to the main
    thread only), so the block runs without handlers there.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, handler) for sig in sigs}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
