"""The clients' click group: one command per file (chat/, ops/), added here."""

from __future__ import annotations

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def group() -> None:
    """eldric's terminal client and operator commands (on the roles' HTTP APIs)."""


def _add_all() -> None:
    # Each command's module is imported here, not at the top, so a broken optional
    # dependency of one command (rich for chat) names that command when it is used.
    from eldric.client.chat.command import chat  # noqa: PLC0415
    from eldric.client.ops import COMMANDS  # noqa: PLC0415

    group.add_command(chat)
    for command in COMMANDS:
        group.add_command(command)


_add_all()
