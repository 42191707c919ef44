"""Warm workers: the Celery app, the worker, the submitter, the local broker."""
