"""The themes file: what each knowledge theme is called and the words that name it.

eldric ships one (themes.json beside this module, 150+ themes); `--themes FILE` replaces
it. Either is checked strictly when the router starts, and a bad file is refused there,
naming its path and the fault: a typo must not turn knowledge routing silently off.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import msgspec

from eldric.errors import ConfigError

SHIPPED = Path(__file__).parent / "themes.json"

ThemeId = Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")]
Phrase = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]


class Theme(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    id: ThemeId  # a worker tagged theme:<id> specialises in it
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    # a broader theme: its workers take this one's prompts when none is tagged with it
    parent: ThemeId | None = None
    keywords: Annotated[list[Phrase], msgspec.Meta(min_length=1, max_length=1000)]
    examples: Annotated[list[Annotated[str, msgspec.Meta(max_length=2000)]],
                        msgspec.Meta(max_length=50)] = []


class ThemesFile(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    version: Literal[1] = 1
    themes: Annotated[list[Theme], msgspec.Meta(min_length=1, max_length=2000)]


def load(path: str | None) -> tuple[list[Theme], str]:
    """The themes of `path` (None: the shipped file) and where they came from."""
    where = Path(path) if path else SHIPPED
    try:
        raw = where.read_bytes()
    except OSError as exc:
        raise ConfigError(f"themes file {where}: cannot read it: {exc.strerror}") from None
    try:
        themes = msgspec.json.decode(raw, type=ThemesFile).themes
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise ConfigError(f"themes file {where}: {exc}") from None
    check(themes, where)
    return themes, str(where)


def check(themes: list[Theme], where: Path) -> None:
    """What a Struct cannot say: ids are unique, parents exist and never loop, and every
    keyword has a word the classifier can match."""
    from eldric.roles.router.knowledge.classify import words  # one tokeniser for both

    by_id: dict[str, Theme] = {}
    for t in themes:
        if t.id in by_id:
            raise ConfigError(f"themes file {where}: theme id {t.id!r} appears twice")
        by_id[t.id] = t
        for k in t.keywords:
            if not words(k):
                raise ConfigError(f"themes file {where}: theme {t.id!r}: keyword {k!r} "
                                  "has no word to match")
    for t in themes:
        seen = {t.id}
        parent = t.parent
        while parent is not None:
            if parent not in by_id:
                raise ConfigError(f"themes file {where}: theme {t.id!r}: parent "
                                  f"{parent!r} is not a theme")
            if parent in seen:
                raise ConfigError(f"themes file {where}: theme {t.id!r}: its parents loop")
            seen.add(parent)
            parent = by_id[parent].parent
