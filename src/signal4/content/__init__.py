"""Content and its state: settings, the content store, the state database."""
