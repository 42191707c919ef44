"""The Celery app a worker loads: ``python -m celery -A signal4.workers.workerapp worker …``.

``inv worker <env>`` sets ``SIGNAL4_WORKER_ENV`` and starts that command with the env's
own interpreter; see :mod:`signal4.workers.worker`.
"""

from __future__ import annotations

from signal4.workers.worker import build_worker_app

app = build_worker_app()
