"""The operator commands (`eldric workers`, `models`, `keys`, `router`, `health`,
`backends`, `usage`): the roles' public HTTP APIs from a shell, each with a table or `--json`."""

from __future__ import annotations

import click

from eldric.client.ops.backends import backends
from eldric.client.ops.health import health
from eldric.client.ops.keys import keys
from eldric.client.ops.models import models
from eldric.client.ops.router import router
from eldric.client.ops.usage import usage
from eldric.client.ops.workers import workers

COMMANDS: list[click.Command] = [workers, models, keys, router, health, backends, usage]
