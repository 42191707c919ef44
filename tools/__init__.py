"""Developer tools that are not part of the signal4 package (run through nox sessions)."""
