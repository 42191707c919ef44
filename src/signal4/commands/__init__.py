"""The bodies of the Invoke tasks: one module per group, called by tasks.py."""
