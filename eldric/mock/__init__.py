"""The deterministic `mock` backend (a test and benchmark backend, not inference)."""

from eldric.mock.server import MODEL, make_app

__all__ = ["MODEL", "make_app"]
