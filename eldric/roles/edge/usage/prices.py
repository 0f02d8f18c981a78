"""What a reply cost: the built-in table (prices.json: per million input / output /
cached tokens of the common cloud models), under the configured prices (usage.prices).

Lookup, first match wins: the configured exact name; the configured names ending in `*`
(a prefix, the longest first); the table's exact name; the table's longest name the
model begins with, followed by '-', ':' or '@' (a dated snapshot); the same two with a
provider prefix ('openai/gpt-4o') taken off. Nothing matches: unpriced (cost None, listed
as such), never a guessed 0: a local model costs 0 only when priced so."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import msgspec

from eldric.roles.edge.usage.config import Price
from eldric.roles.edge.usage.record import Tokens

_TABLE = Path(__file__).with_name("prices.json")
_BOUNDARY = "-:@"
_MEMO = 4096  # model names are the client's: the memo of lookups stays bounded


@cache
def table() -> dict[str, Price]:
    raw = json.loads(_TABLE.read_text(encoding="utf-8"))["models"]
    return msgspec.convert(raw, dict[str, Price])


class Prices:
    def __init__(self, configured: dict[str, Price] | None = None) -> None:
        configured = configured or {}
        self.exact = {k: v for k, v in configured.items() if not k.endswith("*")}
        self.prefixes = sorted(((k[:-1], v) for k, v in configured.items() if k.endswith("*")),
                               key=lambda kv: -len(kv[0]))
        self.table = table()
        self._by_len = sorted(self.table, key=len, reverse=True)
        self._memo: dict[str, Price | None] = {}

    def of(self, model: str) -> Price | None:
        try:
            return self._memo[model]
        except KeyError:
            pass
        if len(self._memo) >= _MEMO:
            self._memo.clear()
        price = self._memo[model] = self._lookup(model)
        return price

    def _lookup(self, model: str) -> Price | None:
        if model in self.exact:
            return self.exact[model]
        for prefix, price in self.prefixes:
            if model.startswith(prefix):
                return price
        found = self._in_table(model)
        if found is None and "/" in model:
            found = self._in_table(model.rsplit("/", 1)[1])
        return found

    def _in_table(self, model: str) -> Price | None:
        if model in self.table:
            return self.table[model]
        for name in self._by_len:
            if model.startswith(name) and model[len(name)] in _BOUNDARY:
                return self.table[name]
        return None

    def cost(self, model: str, tokens: Tokens) -> float | None:
        price = self.of(model) if model else None
        if price is None:
            return None
        cached = min(tokens.cached, tokens.prompt)
        cached_price = price.input if price.cached is None else price.cached
        return ((tokens.prompt - cached) * price.input + cached * cached_price
                + tokens.completion * price.output) / 1_000_000
