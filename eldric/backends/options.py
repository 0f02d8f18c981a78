"""A backend's `options`, checked when it is configured (the cloud role's backends, the
worker's --backend-options), so what the operator got wrong is said at start-up (or as
the admin API's 400), not found per request or never: a misspelt key would be ignored
unsaid, a missing required option would be a 500 on every request."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

from eldric.backends.egress import Adapter
from eldric.errors import EldricError

# What every backend takes (eldric/backends/call.py, images.py, wire/vision.py,
# wire/xmltools.py; the cloud role's model list): the models served where the API lists
# none, which models see images, the image fetch's bounds, XML tool emulation.
COMMON = frozenset({"models", "vision", "image_max_bytes", "image_timeout_ms", "xml_tools",
                    "tools"})


def check(kind: str, adapter: Adapter | None, options: Mapping[str, Any],
          key: str | None = None) -> None:
    """ValueError naming the option: a key `kind` does not read, a value that cannot
    work. `adapter` None: an OpenAI-compatible kind, which reads COMMON only."""
    known = COMMON | (adapter.option_keys or frozenset()) if adapter is not None else COMMON
    if adapter is None or adapter.option_keys is not None:
        for name in options:
            if name not in known:
                close = difflib.get_close_matches(name, known, n=1)
                hint = f"did you mean {close[0]!r}? " if close else ""
                raise ValueError(f"options.{name}: not an option of {kind} ({hint}its "
                                 f"options: {', '.join(sorted(known))}; docs/backends.md)")
    models = options.get("models")
    if models is not None and (not isinstance(models, list)
                               or not all(isinstance(m, str) and m for m in models)):
        raise ValueError("options.models must be a list of model names")
    if adapter is not None and adapter.check is not None:
        try:
            adapter.check(options, key)
        except EldricError as exc:  # a check that reuses the request path's own error
            raise ValueError(exc.message) from None
