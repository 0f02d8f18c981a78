"""eldric's clients: `eldric chat` and the operator subcommands (`eldric workers`,
`models`, `keys`, `router`, `health`, `backends`, `usage`).

They speak only the roles' public HTTP APIs, so they work against any eldric (and `chat`
against any OpenAI-compatible endpoint); nothing here imports role code
(tests/test_layering.py checks the shared layers import no role). `eldric --role …` never
imports this package: cli.main hands argv here only when its first word is one of NAMES.
"""

from __future__ import annotations

from collections.abc import Sequence

NAMES = ("chat", "workers", "models", "keys", "router", "health", "backends", "usage")


def main(args: Sequence[str]) -> None:
    from eldric.client.commands import group  # click commands, imported only when used

    group.main(args=list(args), prog_name="eldric")
