"""`inv measure`: start-up per launch way, import profiles, disk, the report."""
