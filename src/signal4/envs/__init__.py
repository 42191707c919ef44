"""Envs: the manifest, venvs on disk, syncing them from the lock, and the checks."""
