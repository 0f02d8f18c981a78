"""What every worker-like role (worker, cloud) shares about belonging to a cluster."""
