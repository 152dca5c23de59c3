"""Dataset loaders (local JSONL + Hub mapping) and prompt templates."""

import json

import pytest

from benchmarks.math import datasets as ds
from benchmarks.math.datasets import DatasetError, HubSpec, load_problems, read_jsonl, write_jsonl
from benchmarks.math.prompts import QWEN25_MATH_SYSTEM, build_prompt

EXPECTED_ROWS = {
    "math500": 500, "aime24": 30, "aime25": 30, "amc23": 40, "minerva": 272,
    "olympiadbench": 675, "numina20k_train": 20_000,
}


@pytest.mark.filterwarnings("ignore:.*unbalanced braces")  # minerva/numina: truncated golds upstream
@pytest.mark.parametrize("name", sorted(EXPECTED_ROWS))
def test_shared_sets_load_with_spec_sizes(shared_math_dir, name):
    rows = load_problems(name, "local", shared_math_dir)
    assert len(rows) == EXPECTED_ROWS[name]
    assert len({r["id"] for r in rows}) == len(rows)
    assert all(isinstance(r["answer"], str) and r["answer"] for r in rows)
    assert all(r["problem"].strip() for r in rows)


def test_limit_and_auto_source(shared_math_dir):
    assert [r["id"] for r in load_problems("aime24", "auto", shared_math_dir, limit=3)] == [
        "aime24-0", "aime24-1", "aime24-2"]


def test_any_name_loads_from_a_local_dir(tmp_path):
    rows = [{"id": "a-0", "source": "arith", "problem": "1 + 2", "answer": 3, "solution": "x"}]
    write_jsonl(rows, tmp_path / "arith_test.jsonl")
    got = load_problems("arith_test", local_dir=tmp_path)
    assert got == [{"id": "a-0", "source": "arith", "problem": "1 + 2", "answer": "3", "solution": "x"}]


@pytest.mark.parametrize(
    "line, message",
    [
        ('{"id": "x", "source": "s", "problem": "p"', "invalid JSON"),
        ('{"id": "x", "source": "s", "problem": "p"}', "missing key(s) ['answer']"),
        ('["not", "an", "object"]', "expected a JSON object"),
        ('{"id": "x", "source": "s", "problem": "", "answer": "1"}', "'problem' must be"),
        ('{"id": "x", "source": "s", "problem": "p", "answer": null}', "'answer' must be"),
        ('{"id": "a", "source": "s", "problem": "p", "answer": "1"}', "duplicate id"),
    ],
)
def test_malformed_line_names_file_and_line(tmp_path, line, message):
    path = tmp_path / "bad.jsonl"
    good = json.dumps({"id": "a", "source": "s", "problem": "p", "answer": "1"})
    path.write_text(good + "\n\n" + line + "\n")
    with pytest.raises(DatasetError) as e:
        read_jsonl(path)
    assert f"{path}:3" in str(e.value)
    assert message in str(e.value)


def test_missing_everywhere_names_what_was_tried(tmp_path, monkeypatch):
    def offline(*a, **k):
        raise ConnectionError("no network")

    monkeypatch.setattr(ds, "from_hub", offline)
    with pytest.raises(DatasetError) as e:
        load_problems("math500", "auto", tmp_path)
    msg = str(e.value)
    assert str(tmp_path / "math500.jsonl") in msg and "HuggingFaceH4/MATH-500@test" in msg
    assert "ConnectionError" in msg
    with pytest.raises(DatasetError, match="does not exist"):
        load_problems("math500", "local", tmp_path)
    with pytest.raises(DatasetError, match="no hub id"):
        load_problems("my_private_set", "hub")
    with pytest.raises(DatasetError, match="source must be"):
        load_problems("math500", "ftp")


class _FakeHubDataset(list):
    def __init__(self, rows):
        super().__init__(rows)
        self.column_names = list(rows[0])


def test_hub_rows_are_mapped_to_our_fields(monkeypatch):
    """from_hub maps columns (incl. list answers and answers boxed inside solutions)."""
    import datasets as hf_datasets

    tables = {
        ("org/olymp", None, "test"): [
            {"question": "Find x.", "final_answer": ["$3$"]},
            {"question": "Find y.", "final_answer": []},  # no answer: dropped
        ],
        ("org/numina", None, "train"): [
            {"problem": "P1", "solution": r"so \boxed{\frac{1}{2}}."},
            {"problem": "P2", "solution": "no box"},
            {"problem": "P3", "solution": r"\boxed{7}"},
        ],
    }
    monkeypatch.setattr(hf_datasets, "load_dataset", lambda repo, config, split: _FakeHubDataset(tables[(repo, config, split)]))
    rows = load_problems("olymp", "hub", hub_id="org/olymp@test")
    assert rows == [{"id": "olymp-0", "source": "olymp", "problem": "Find x.", "answer": "3"}]
    spec = HubSpec("org/numina", "train", None, "problem", None, answer_from_solution="solution", limit=1)
    monkeypatch.setitem(ds.HUB_SOURCES, "numina_tiny", spec)
    assert load_problems("numina_tiny", "hub") == [
        {"id": "numina_tiny-0", "source": "numina_tiny", "problem": "P1", "answer": r"\frac{1}{2}"}]


def test_cli_materialises_local_copies(shared_math_dir, tmp_path):
    ds.main(["--names", "aime24,amc23", "--source", "local", "--local-dir", str(shared_math_dir),
             "--out-dir", str(tmp_path), "--limit", "5"])
    assert len(read_jsonl(tmp_path / "aime24.jsonl")) == 5
    assert read_jsonl(tmp_path / "amc23.jsonl") == load_problems("amc23", local_dir=shared_math_dir, limit=5)


# ------------------------------------------------------------------------------- prompts
def test_plain_prompt_is_exact():
    assert build_prompt("What is 2 + 3?", "plain") == "Problem: What is 2 + 3?\nSolution:"


def test_qwen_cot_prompt_uses_the_chat_template():
    from benchmarks.math.tiny import build_char_tokenizer

    tok = build_char_tokenizer()
    p = build_prompt("What is 2 + 3?", "qwen25-math-cot", tok)
    assert p == (f"<|im_start|>system\n{QWEN25_MATH_SYSTEM}<|im_end|>\n"
                 "<|im_start|>user\nWhat is 2 + 3?<|im_end|>\n<|im_start|>assistant\n")


def test_prompt_errors_are_clear():
    with pytest.raises(ValueError, match="unknown prompt template"):
        build_prompt("x", "alpaca")
    with pytest.raises(ValueError, match="chat template"):
        build_prompt("x", "qwen25-math-cot", tokenizer=None)


def test_truncated_gold_answers_are_flagged(tmp_path):
    rows = [{"id": "a", "source": "s", "problem": "p", "answer": r"\frac{1}{2}"},
            {"id": "b", "source": "s", "problem": "p", "answer": r"\frac{2 \pi c^{2"}]
    write_jsonl(rows, tmp_path / "t.jsonl")
    with pytest.warns(UserWarning, match=r"t.jsonl: 1 answer\(s\) with unbalanced braces \(lines \[2\]"):
        assert len(read_jsonl(tmp_path / "t.jsonl")) == 2


def test_braces_balanced_matches_extraction_rules():
    from benchmarks.math.datasets import braces_balanced

    assert braces_balanced(r"\{1, 2\}") and braces_balanced(r"\frac{1}{2}") and braces_balanced("")
    assert not braces_balanced("a}{") and not braces_balanced(r"\sqrt{2")
