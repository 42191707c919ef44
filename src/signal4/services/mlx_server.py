"""Serve an MLX language model over HTTP with mlx-lm's server (Apple silicon only).

``python -m signal4.services.mlx_server --model PATH_OR_NAME [--host H] [--port P]``.
A long-running service rather than a step: the manifest gives it no timeout. It speaks
the result protocol for its exit and for ``--ready``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from signal4 import codes
from signal4.codes import Status
from signal4.stepkit import protocol


def ready() -> None:
    """Import what serving imports."""
    import mlx_lm.server  # noqa: F401


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the options and serve until stopped."""
    parser = argparse.ArgumentParser(
        prog="python -m signal4.services.mlx_server", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--model", help="local model folder or hub name")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--ready", action="store_true", help="import, print one line, exit")
    args = parser.parse_args(argv)
    try:
        ready()
    except ImportError as exc:
        print(
            protocol.encode(
                {
                    "status": Status.INVALID_INPUT,
                    "error": f"mlx-lm is not available here ({exc}); "
                    "the mlx-server env is for Apple silicon",
                }
            )
        )
        return codes.EXIT_INVALID
    if args.ready:
        print(
            protocol.encode({"status": Status.COMPLETED, "ready": True, "python": sys.executable})
        )
        return codes.EXIT_OK
    if not args.model:
        print(protocol.encode({"status": Status.INVALID_INPUT, "error": "--model is required"}))
        return codes.EXIT_INVALID
    import mlx_lm.server

    sys.argv = [
        "mlx_lm.server",
        "--model",
        args.model,
        "--host",
        args.host,
        "--port",
        str(args.port),
    ]
    mlx_lm.server.main()
    print(protocol.encode({"status": Status.COMPLETED}))
    return codes.EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
