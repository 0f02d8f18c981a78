"""Knowledge routing's themes file and keyword scorer, without a server: the shipped file
loads (150+ themes), a bad file is refused naming its path and fault, and the labelled
prompts in tests/data are classified at the accuracy measured (see README)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from eldric.errors import ConfigError
from eldric.roles.router.knowledge import themes
from eldric.roles.router.knowledge.classify import KeywordScorer, words
from eldric.roles.router.knowledge.themes import Theme

DATA = Path(__file__).parent.parent / "data"
THRESHOLD = 1.0  # KnowledgeConfig.threshold's default


def test_the_shipped_themes_load_150_or_more_across_the_domains():
    loaded, source = themes.load(None)
    assert len(loaded) >= 150
    assert source.endswith("themes.json")
    top = {t.id for t in loaded if t.parent is None}
    for domain in ("science", "engineering", "medicine", "law", "finance", "code",
                   "writing", "languages", "humanities", "mathematics"):
        assert domain in top
    assert all(t.keywords for t in loaded)


def _file(tmp_path, data) -> str:
    p = tmp_path / "themes.json"
    p.write_text(data if isinstance(data, str) else json.dumps(data))
    return str(p)


def _theme(id="a", **extra):
    return {"id": id, "name": id.upper(), "keywords": ["alpha"], **extra}


@pytest.mark.parametrize("data, fault", [
    ("{not json", "malformed"),
    ({"themes": []}, "themes"),
    ({"themes": [_theme(), _theme()]}, "appears twice"),
    ({"themes": [_theme(parent="nope")]}, "'nope' is not a theme"),
    ({"themes": [_theme("a", parent="b"), _theme("b", parent="a")]}, "loop"),
    ({"themes": [_theme(colour="red")]}, "colour"),
    ({"themes": [_theme(keywords=[])]}, "keywords"),
    ({"themes": [_theme(keywords=["--"])]}, "no word"),
    ({"themes": [_theme(id="Has Space")]}, "id"),
    ({"version": 2, "themes": [_theme()]}, "version"),
])
def test_a_bad_themes_file_is_refused_with_its_path_and_fault(tmp_path, data, fault):
    path = _file(tmp_path, data)
    with pytest.raises(ConfigError) as err:
        themes.load(path)
    assert path in str(err.value) and fault in str(err.value)


def test_a_missing_themes_file_is_refused_with_its_path(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        themes.load(str(tmp_path / "absent.json"))


def test_the_router_refuses_to_start_on_a_bad_themes_file(tmp_path):
    path = _file(tmp_path, {"themes": [_theme(), _theme()]})
    out = subprocess.run([sys.executable, "-m", "eldric", "--role", "router", "--port", "0",
                          "--bind", "127.0.0.1", "--themes", path,
                          "--data-dir", str(tmp_path / "d")],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and path in out.stderr and "appears twice" in out.stderr


def test_words_meet_their_keywords_in_other_forms():
    assert words("Volcanoes") == words("volcano")
    assert words("tumors") == words("tumor")
    assert words("Alzheimer's") == words("alzheimer")
    assert words("visualise") == words("visualize")
    assert words("procrastinating") == words("procrastinating")
    assert words("C++ and C#, node.js") == ["c++", "and", "c#", "node.js"]


def _scorer(*ts: Theme) -> KeywordScorer:
    return KeywordScorer(list(ts))


def test_a_phrase_outscores_a_word_and_counts_once():
    s = _scorer(Theme(id="a", name="A", keywords=["blood pressure"]),
                Theme(id="b", name="B", keywords=["blood", "pressure"]))
    got = s.score("blood pressure, blood pressure, blood pressure", 2)
    assert [(x.theme.id, x.score) for x in got] == [("a", 2.0), ("b", 2.0)]  # file order
    got = s.score("my blood pressure is high", 1)
    assert got[0].score == 2.0  # each phrase once, however often it is said


def test_a_shared_keyword_splits_and_the_more_specific_theme_wins_a_tie():
    s = _scorer(Theme(id="med", name="M", keywords=["pain"]),
                Theme(id="cardio", name="C", parent="med", keywords=["pain"]))
    got = s.score("chest pain", 2)
    assert [(x.theme.id, x.score) for x in got] == [("cardio", 0.5), ("med", 0.5)]
    assert s.score("nothing of the sort", 3) == []


def _accuracy(name: str) -> tuple[float, float, int]:
    loaded, _ = themes.load(None)
    by_id = {t.id: t for t in loaded}
    s = KeywordScorer(loaded)

    def lineage(i):
        out = []
        while i is not None:
            out.append(i)
            i = by_id[i].parent
        return out

    rows = [json.loads(line) for line in (DATA / name).read_text().splitlines() if line]
    exact = near = 0
    for r in rows:
        assert r["theme"] is None or r["theme"] in by_id, r  # labels name real themes
        best = s.score(r["prompt"], 3)
        got = best[0].theme.id if best and best[0].score >= THRESHOLD else None
        exact += got == r["theme"]
        # routed right when a worker tagged with the label (or a parent) would take it
        near += got == r["theme"] or bool(got and r["theme"] and (
            got in lineage(r["theme"]) or r["theme"] in lineage(got)))
    return exact / len(rows), near / len(rows), len(rows)


def test_the_labelled_prompts_are_classified_at_the_measured_accuracy():
    # knowledge_prompts.jsonl (177) was used to tune the themes file: measured 169/177
    # (0.955; 0.859 before tuning); the held-out 63 were written after and never tuned
    # on: measured 49/63 (0.778). Floors at those measurements: a themes or scorer change
    # that classifies worse fails here.
    tuned, tuned_near, n1 = _accuracy("knowledge_prompts.jsonl")
    held, held_near, n2 = _accuracy("knowledge_prompts_heldout.jsonl")
    assert n1 + n2 >= 200 and n2 >= 60
    assert tuned >= 0.95 and tuned_near >= tuned
    assert held >= 0.77 and held_near >= held
