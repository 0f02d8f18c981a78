"""The approximate prefix tree: what it matches, what it forgets, what it costs."""

from __future__ import annotations

import random
import time

from eldric.roles.router.cache.tree import Tree

SYSTEM = "system: You are a careful assistant. " * 40


def test_match_finds_the_longest_shared_prefix_and_its_holders():
    t = Tree(max_chars=1 << 20)
    t.insert(SYSTEM + "user: tell me about owls", "a")
    t.insert(SYSTEM + "user: tell me about oaks", "b")
    text = SYSTEM + "user: tell me about owls, and more"
    n, holders = t.match(text, {"a", "b"})
    assert text[:n] == SYSTEM + "user: tell me about owls" and holders == ["a"]
    n, holders = t.match(SYSTEM + "user: what", {"a", "b"})
    assert n == len(SYSTEM + "user: ") and sorted(holders) == ["a", "b"]


def test_only_live_tenants_count():
    t = Tree(max_chars=1 << 20)
    t.insert(SYSTEM + "user: one", "gone")
    t.insert(SYSTEM[:100], "b")
    n, holders = t.match(SYSTEM + "user: one", {"b"})
    assert (n, holders) == (100, ["b"])
    assert t.match(SYSTEM, {"c"}) == (0, [])


def test_splitting_keeps_every_tenants_characters_counted_once():
    t = Tree(max_chars=1 << 20)
    t.insert("abcdef", "a")
    t.insert("abcxyz", "a")  # splits "abcdef" at 3: adds "xyz" only
    t.insert("abcdef", "b")
    assert t.chars == {"a": 9, "b": 6}


def test_eviction_drops_the_least_recently_used_first():
    t = Tree(max_chars=2000)
    old, new = "old conversation " * 60, "new conversation " * 60  # ~1000 chars each
    t.insert(old, "a")
    t.insert(new, "a")
    t.insert(SYSTEM[:500], "a")
    assert t.chars["a"] > 2000
    freed = t.evict()
    assert freed > 0 and t.chars["a"] <= 2000
    assert t.match(old, {"a"}) == (0, [])  # the oldest went
    assert t.match(new, {"a"})[0] == len(new)  # the recent stayed


def test_a_tenant_never_grows_past_twice_its_bound_between_rounds():
    t = Tree(max_chars=5000)
    rng = random.Random(1)
    for i in range(400):
        t.insert("".join(rng.choice("abcdefgh") for _ in range(200)), "a")
        assert t.chars["a"] <= 2 * 5000
    assert t.evict() >= 0 and t.chars["a"] <= 5000


def test_remove_forgets_a_worker_and_keeps_the_others():
    t = Tree(max_chars=1 << 20)
    t.insert(SYSTEM + "x", "a")
    t.insert(SYSTEM + "y", "b")
    t.remove("a")
    assert "a" not in t.chars and t.match(SYSTEM + "x", {"a", "b"}) == (len(SYSTEM), ["b"])
    t.remove("b")
    assert t.chars == {} and not t.root.children


def test_match_costs_microseconds():
    """A 2k-token system prompt (~9k chars) in a tree of 64 conversations x 6 turns."""
    t = Tree(max_chars=1 << 24)
    system = ("system: " + "Answer precisely, cite sources, keep a neutral tone. " * 170)
    convs = []
    for c in range(64):
        text = system
        for turn in range(6):
            text += f"\nuser: question {turn} of conversation {c}\nassistant: answer {turn}"
            t.insert(text, f"w{c % 4}")
        convs.append(text)
    live = {"w0", "w1", "w2", "w3"}
    runs = []
    for text in convs * 10:
        t0 = time.perf_counter()
        n, _ = t.match(text, live)
        runs.append(time.perf_counter() - t0)
        assert n == len(text)
    runs.sort()
    assert runs[len(runs) // 2] < 50e-6  # measured ~5 µs here; generous for a shared box
