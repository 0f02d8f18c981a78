"""State that must survive a restart. SQLite under --data-dir is the embedded default."""
