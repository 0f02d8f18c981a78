"""--otel-endpoint is a collector's URL or nothing: a value that cannot be one is refused
at start-up, naming the flag, rather than accepted and every span silently lost."""

from __future__ import annotations

import pytest

from eldric import registry
from eldric.cli import load_config
from eldric.errors import ConfigError


@pytest.mark.parametrize("bad", ["notaurl", "ftp://collector:4318", "http://",
                                 "127.0.0.1:4318", "http://host :4318"])
def test_an_endpoint_that_is_not_a_url_is_refused(bad):
    with pytest.raises(ConfigError, match="--otel-endpoint"):
        load_config(registry.resolve("worker"), {"backend": "mock", "otel_endpoint": bad}, {})


@pytest.mark.parametrize("good", ["", "http://127.0.0.1:4318", "https://otel.example/v1/traces",
                                  "http://collector:4317"])
def test_a_url_or_nothing_is_taken(good):
    load_config(registry.resolve("worker"), {"backend": "mock", "otel_endpoint": good}, {})
