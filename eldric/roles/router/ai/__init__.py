"""AI routing: an LLM picks the worker (modes none / advisory / autonomous)."""
