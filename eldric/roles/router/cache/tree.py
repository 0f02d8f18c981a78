"""An approximate prefix tree of the prompts a router sent, one per model.

What each worker's prompt cache probably holds, learned from where the router sent what:
a radix tree over the prompt's characters (no tokenizer: the text is what is shared), in
which every node records the workers ("tenants") whose prompts passed through it and
when. A match walks the request's text down the tree and answers how many characters
some live worker shares with it, and which workers. Memory is bounded per tenant in
characters; the least recently used leaves go first (SGLang's router does the same).

Cost: a match or an insert is one dict look-up and one `str.startswith` per node on the
path, so a prompt of 10k characters in a conversation tree costs microseconds.
"""

from __future__ import annotations

import heapq
from collections.abc import Container


class _Node:
    __slots__ = ("text", "children", "tenants", "parent")

    def __init__(self, text: str, parent: _Node | None) -> None:
        self.text = text  # the characters from the parent to here
        self.children: dict[str, _Node] = {}  # by first character
        self.tenants: dict[str, int] = {}  # worker id -> last use (the tree's clock)
        self.parent = parent


def _common(label: str, text: str, i: int) -> int:
    """How many leading characters of `label` text has at i (the first one is known to
    match: children are keyed by it)."""
    if text.startswith(label, i):
        return len(label)
    lo, hi = 1, min(len(label), len(text) - i)
    while lo < hi:  # the longest prefix of label that text has at i
        mid = (lo + hi + 1) // 2
        if text.startswith(label[:mid], i):
            lo = mid
        else:
            hi = mid - 1
    return lo


class Tree:
    __slots__ = ("root", "chars", "max_chars", "_clock")

    def __init__(self, max_chars: int) -> None:
        self.root = _Node("", None)
        self.chars: dict[str, int] = {}  # per tenant: characters of the nodes it holds
        self.max_chars = max_chars
        self._clock = 0

    def match(self, text: str, live: Container[str]) -> tuple[int, list[str]]:
        """The longest prefix of `text` some tenant in `live` holds: its length, and the
        live tenants that hold all of it."""
        node, i, n = self.root, 0, len(text)
        best: list[str] = []
        while i < n:
            child = node.children.get(text[i])
            if child is None:
                break
            holders = [t for t in child.tenants if t in live]
            if not holders:
                break
            k = _common(child.text, text, i)
            i += k
            best = holders
            if k < len(child.text):
                break
            node = child
        return (i if best else 0), best

    def insert(self, text: str, tenant: str) -> int | None:
        """Remember that `tenant` was sent `text` (now its most recent use). Where in
        `text` what the tenant did not hold yet begins (None: it held all of it), for
        forget() when the attempt fails."""
        self._clock += 1
        now = self._clock
        node, i, n = self.root, 0, len(text)
        chars = self.chars
        added = 0
        fresh = None
        while i < n:
            child = node.children.get(text[i])
            if child is None:
                leaf = _Node(text[i:], node)
                leaf.tenants[tenant] = now
                node.children[text[i]] = leaf
                added += n - i
                if fresh is None:
                    fresh = i
                break
            k = _common(child.text, text, i)
            if k < len(child.text):  # split the edge where the texts part
                mid = _Node(child.text[:k], node)
                mid.tenants = dict(child.tenants)
                mid.children[child.text[k]] = child
                node.children[text[i]] = mid
                child.text = child.text[k:]
                child.parent = mid
                child = mid
            if tenant not in child.tenants:
                added += len(child.text)
                if fresh is None:
                    fresh = i
            child.tenants[tenant] = now
            node = child
            i += k
        if added:
            chars[tenant] = chars.get(tenant, 0) + added
            # Bounded between eviction rounds too: a burst of new prompts cannot grow a
            # tenant past twice its share before it is cut back.
            if chars[tenant] > 2 * self.max_chars:
                self.evict(tenant)
        return fresh

    def forget(self, text: str, tenant: str, start: int) -> int:
        """Undo insert(text, tenant) from `start` (what it returned): the attempt failed,
        so the tenant does not cache that part. A tenant holds a prefix-closed set of
        nodes, so every node of the path from `start` on was the insert's. The
        characters freed."""
        node, i, n = self.root, 0, len(text)
        path = []
        while i < n:
            child = node.children.get(text[i])
            if child is None:
                break
            k = _common(child.text, text, i)
            if i >= start:
                path.append(child)
            if k < len(child.text):
                break
            node = child
            i += k
        freed = 0
        for nd in reversed(path):
            if nd.tenants.pop(tenant, None) is not None:
                freed += len(nd.text)
            parent = nd.parent
            if not nd.tenants and not nd.children and parent is not None:
                del parent.children[nd.text[0]]
        if freed:
            left = self.chars.get(tenant, 0) - freed
            if left > 0:
                self.chars[tenant] = left
            else:
                self.chars.pop(tenant, None)
        return freed

    def evict(self, tenant: str | None = None) -> int:
        """Cut every tenant (or one) back to max_chars, least recently used leaves first;
        the characters evicted."""
        over = [t for t, c in self.chars.items()
                if c > self.max_chars and (tenant is None or t == tenant)]
        freed = 0
        for t in over:
            freed += self._evict_tenant(t, self.chars[t] - self.max_chars)
        return freed

    def remove(self, tenant: str) -> None:
        """Forget a worker that left."""
        if tenant in self.chars:
            self._evict_tenant(tenant, self.chars[tenant])

    def tenants(self) -> list[str]:
        return list(self.chars)

    def _evict_tenant(self, tenant: str, excess: int) -> int:
        heap = [(node.tenants[tenant], id(node), node) for node in self._leaves(tenant)]
        heapq.heapify(heap)
        freed = 0
        while heap and freed < excess:
            _, _, node = heapq.heappop(heap)
            if node.tenants.pop(tenant, None) is None:
                continue
            freed += len(node.text)
            parent = node.parent
            if not node.tenants and not node.children and parent is not None:
                del parent.children[node.text[0]]
            # the parent may now be one of the tenant's leaves
            if parent is not None and parent is not self.root and not any(
                    tenant in c.tenants for c in parent.children.values()):
                heapq.heappush(heap, (parent.tenants[tenant], id(parent), parent))
        left = self.chars[tenant] - freed
        if left > 0:
            self.chars[tenant] = left
        else:
            del self.chars[tenant]
        return freed

    def _leaves(self, tenant: str) -> list[_Node]:
        """The nodes `tenant` holds none of whose children it holds."""
        out, stack = [], [self.root]
        while stack:
            node = stack.pop()
            below = [c for c in node.children.values() if tenant in c.tenants]
            if below:
                stack.extend(below)
            elif node is not self.root and tenant in node.tenants:
                out.append(node)
        return out
