"""Known voices across items: a registry of voice prints in the state DB, matched to
persons, named by the user (``inv voices``); the runner's side, standard library only.

Steps import only :mod:`signal4.voices.names` (what ``speakers.json`` holds); the rest
opens the state DB and is the runner's (see docs/voices.md).
"""
