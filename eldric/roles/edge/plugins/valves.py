"""A plugin's valves: its run-time settings, checked against the manifest's JSON Schema.

jsonschema does the checking (every keyword of the draft the schema names, formats
and all), not hand-written code. Secret fields, `"format": "password"` or
`"x-secret": true` in their schema, are masked in every answer and never logged; a PUT
that sends the mask back keeps the stored secret, so a form read, edited and sent
back does not overwrite it with the mask. valves.json is written atomically, readable by
the edge's user only.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import jsonschema
from jsonschema.exceptions import best_match

MASK = "********"


class BadValves(ValueError):
    """A value the schema refuses: `field` names it (dotted path), for the 400."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def check_schema(schema: dict[str, Any]) -> str | None:
    """None when `schema` is a JSON Schema, else why not (reported as a manifest error)."""
    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.SchemaError as e:
        return f"valves schema: {e.message}"
    return None


def _secret_fields(schema: dict[str, Any]) -> set[str]:
    props = schema.get("properties") or {}
    return {k for k, v in props.items() if isinstance(v, dict)
            and (v.get("format") == "password" or v.get("x-secret") is True)}


class Valves:
    """One plugin's valves: the stored values with the schema's defaults under them."""

    def __init__(self, schema: dict[str, Any], path: Path) -> None:
        self.schema = schema or {"type": "object"}
        self.path = path
        self.secret = _secret_fields(self.schema)
        cls = jsonschema.validators.validator_for(self.schema)
        self._validator = cls(self.schema, format_checker=cls.FORMAT_CHECKER)
        self.values: dict[str, Any] = {}
        self.error: str | None = None  # a valves.json the schema refuses: why
        self.load()

    def load(self) -> None:
        try:
            stored = json.loads(self.path.read_text())
        except FileNotFoundError:
            stored = {}
        except (OSError, ValueError) as e:
            self.error, stored = f"valves.json unreadable: {type(e).__name__}", {}
        try:
            self.values = self._checked(stored if isinstance(stored, dict) else {})
        except BadValves as e:  # run with the defaults, and say why
            self.error = f"valves.json: {e.field}: {e}"
            try:
                self.values = self._checked({})
            except BadValves as e2:  # a required valve with no default, not set yet:
                # the defaults as they are, said why (a PUT sets it); never a crash of
                # the edge's start or reload
                self.error = f"valves: {e2.field}: {e2}" if not stored else self.error
                self.values = self._defaults()

    def _defaults(self) -> dict[str, Any]:
        props = self.schema.get("properties") or {}
        return {k: v["default"] for k, v in props.items() if isinstance(v, dict) and "default" in v}

    def _checked(self, values: dict[str, Any]) -> dict[str, Any]:
        merged = {**self._defaults(), **values}
        error = best_match(self._validator.iter_errors(merged))
        if error is not None:
            path = ".".join(str(p) for p in error.absolute_path)
            if not path and error.validator == "required":
                path = str(error.message).split("'")[1] if "'" in error.message else ""
            if not path and error.validator == "additionalProperties":
                extra = sorted(set(merged) - set(self.schema.get("properties") or {}))
                path = extra[0] if extra else ""
            # The message would quote the value: never for a secret one.
            message = "not a valid value" if path.split(".")[0] in self.secret else error.message
            raise BadValves(path or "valves", message)
        return merged

    def update(self, new: dict[str, Any]) -> dict[str, Any]:
        """Check and store `new` (the mask in a secret field keeps the stored secret);
        raises BadValves. Returns the values to hand the plugin."""
        for k in self.secret:
            if new.get(k) == MASK:  # the mask back: the stored secret, or none at all
                if k in self.values:
                    new[k] = self.values[k]
                else:
                    del new[k]  # never the mask itself stored as the secret
        values = self._checked(new)
        self._write(values)
        self.values, self.error = values, None
        return values

    def masked(self) -> dict[str, Any]:
        return {k: (MASK if k in self.secret and v not in (None, "") else v)
                for k, v in self.values.items()}

    def _write(self, values: dict[str, Any]) -> None:
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".valves-", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as f:  # mkstemp: mode 0600 from the start
                json.dump(values, f, indent=2)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
