"""Cache- and session-aware routing: the prefix tree per model and session affinity."""
