"""eldric: a distributed, OpenAI-compatible LLM inference gateway."""

__version__ = "0.1.0"
