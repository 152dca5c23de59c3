"""The arithmetic task: deterministic, every worked step right, splits disjoint, clear errors."""
from __future__ import annotations

import ast
import json
import operator
import random
import re
from dataclasses import replace

import pytest

from benchmarks.arith.make_data import FILES, MakeDataArgs, make_splits, write_splits
from benchmarks.arith.task import (TaskSpec, evaluate, generate_unique, make_problem, render, sample_expression,
                                   solve_steps)

_BIN = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul}


def reference_value(text: str) -> int:
    """Independent evaluator: Python's own parser and precedence on the rendered expression."""
    def ev(node):
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.BinOp) and type(node.op) in _BIN:
            return _BIN[type(node.op)](ev(node.left), ev(node.right))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -ev(node.operand)
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return node.value
        raise AssertionError(f"unexpected syntax {ast.dump(node)} in {text!r}")
    return ev(ast.parse(text.replace("×", "*"), mode="eval"))


def count_ops(text: str) -> int:
    return len(re.findall(r" [-+×] ", text))


SPECS = [
    TaskSpec(),
    TaskSpec(operators="+-*", paren_prob=0.5),
    TaskSpec(min_operands=3, max_operands=7, max_digits=3, operators="+-*", mul_digits=2, paren_prob=1.0),
    TaskSpec(operators="*", max_digits=1),
    TaskSpec(operators="-", paren_prob=0.7, max_operands=6),
]


@pytest.mark.parametrize("spec", SPECS)
def test_every_worked_step_is_right(spec):
    rng = random.Random(1234)
    for _ in range(400):
        tokens = sample_expression(rng, spec)
        row = make_problem(tokens)
        value = reference_value(render(tokens))
        assert row["answer"] == str(value) == str(evaluate(tokens))
        assert row["problem"] == f"Compute {render(tokens)}."
        chain, boxed = row["solution"].split("\n")
        assert boxed == f"\\boxed{{{value}}}"
        steps = chain.split(" = ")
        assert steps[0] == render(tokens)  # the solution restates the problem
        assert steps[-1] == str(value)
        for before, after in zip(steps, steps[1:]):
            assert reference_value(after) == value, (row, after)
            assert count_ops(after) == count_ops(before) - 1, (before, after)  # one operation per step
        assert len(steps) == row["num_operands"]
        assert spec.min_operands <= row["num_operands"] <= spec.max_operands


def test_order_of_operations_in_steps():
    steps = [render(s) for s in solve_steps([23, "+", 5, "*", "(", 7, "-", 2, ")"])]
    assert steps == ["23 + 5 × (7 - 2)", "23 + 5 × 5", "23 + 25", "48"]
    steps = [render(s) for s in solve_steps([3, "-", "(", 2, "-", 8, ")", "*", 2])]
    assert steps == ["3 - (2 - 8) × 2", "3 - -6 × 2", "3 - -12", "15"]
    assert reference_value("3 - -6 × 2") == 15


def test_generator_is_deterministic_per_seed():
    args = MakeDataArgs(n_sft=300, n_rl_train=50, n_unlabeled=50, n_test=60, n_hard=40, operators="+-*",
                        paren_prob=0.3)
    a, b = make_splits(args), make_splits(args)
    assert a == b
    c = make_splits(MakeDataArgs(**{**args.__dict__, "seed": 1}))
    assert [r["problem"] for r in c["test"]] != [r["problem"] for r in a["test"]]


def test_splits_are_disjoint_and_well_formed(tmp_path):
    args = MakeDataArgs(out_dir=str(tmp_path), n_sft=2000, n_rl_train=300, n_unlabeled=300, n_test=500,
                        n_hard=200, operators="+-*", paren_prob=0.3, max_operands=4, hard_min_operands=5,
                        hard_max_operands=6)
    paths = write_splits(args)
    texts = {}
    for split, path in paths.items():
        assert path.name == f"{FILES[split]}.jsonl"
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        assert len(rows) == getattr(args, f"n_{split}")
        assert len({r["id"] for r in rows}) == len(rows)
        for r in rows:
            assert {"id", "source", "problem", "answer"} <= set(r) and r["source"] == FILES[split]
            if split == "unlabeled":
                assert r["answer"] is None  # gold kept out of the unlabeled split
            else:
                assert r["answer"] == str(reference_value(r["problem"][len("Compute "):-1]))
            assert ("solution" in r) == (split == "sft")
            if split == "hard":
                assert r["num_operands"] > args.max_operands
            else:
                assert args.min_operands <= r["num_operands"] <= args.max_operands
        texts[split] = {r["problem"] for r in rows}
        assert len(texts[split]) == len(rows)
    names = list(texts)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            assert not texts[a] & texts[b], (a, b)


def test_bad_knobs_name_the_field():
    with pytest.raises(ValueError, match="operators"):
        TaskSpec(operators="+/").check()
    with pytest.raises(ValueError, match="max_operands"):
        TaskSpec(min_operands=4, max_operands=3).check()
    with pytest.raises(ValueError, match="hard_min_operands"):
        MakeDataArgs(max_operands=4, hard_min_operands=4).specs()
    with pytest.raises(ValueError, match="distinct problems"):
        generate_unique(random.Random(0), TaskSpec(max_operands=2, max_digits=1, operators="+"), 500, set())


def test_plain_digits_widens_only_problems_without_a_product():
    """plain_digits: operands of a problem without × get up to that many digits; products keep max_digits;
    set to max_digits it draws exactly what the generator draws without it (no extra random draws)."""
    spec = TaskSpec(3, 5, 1, "+-*", 1, 0.0, 1)
    wide = replace(spec, plain_digits=2).check()
    rows = [make_problem(sample_expression(random.Random(i), wide)) for i in range(400)]
    plain = [r for r in rows if r["type"] == "plain"]
    numbers = lambda r: [int(t) for t in r["problem"][len("Compute "):-1].split() if t.isdigit()]
    assert plain and any(n >= 10 for r in plain for n in numbers(r))
    assert all(n < 100 for r in plain for n in numbers(r))
    assert all(n < 10 for r in rows if r["type"] == "mul" for n in numbers(r))
    for r in rows:
        assert r["answer"] == str(reference_value(r["problem"][len("Compute "):-1]))
    same = replace(spec, plain_digits=1)
    assert all(sample_expression(random.Random(i), same) == sample_expression(random.Random(i), spec)
               for i in range(50))
    with pytest.raises(ValueError, match="plain_digits"):
        replace(spec, plain_digits=0).check()


def test_splits_load_through_the_math_harness(tmp_path):
    datasets = pytest.importorskip("benchmarks.math.datasets")
    write_splits(MakeDataArgs(out_dir=str(tmp_path), n_sft=50, n_rl_train=10, n_unlabeled=10, n_test=20, n_hard=10))
    rows = datasets.load_problems("arith_test", source="local", local_dir=str(tmp_path))
    assert len(rows) == 20 and rows[0]["problem"].startswith("Compute ")
    hard = datasets.load_problems("arith_hard", source="local", local_dir=str(tmp_path), limit=5)
    assert len(hard) == 5


def test_styles_render_classify_and_shares():
    from benchmarks.arith.styles import classify, problem_type, render_solution, style_shares
    from benchmarks.arith.task import evaluate

    tokens = [12, "+", 7, "*", 8, "-", 5]
    careful, quick = render_solution(tokens, "careful"), render_solution(tokens, "quick")
    assert careful.startswith("Steps: 12 + 7 × 8 - 5 = 12 + 56 - 5") and careful.endswith(f"\\boxed{{{evaluate(tokens)}}}")
    assert quick == f"Quick: \\boxed{{{evaluate(tokens)}}}"
    assert classify(" " + careful) == "careful" and classify(quick) == "quick"
    assert classify("12 + 7 = 19\n\\boxed{19}") == "other" and classify("") == "other"
    assert problem_type(tokens) == "mul" and problem_type([1, "+", 2]) == "plain"
    shares = style_shares([careful, quick, quick, "x"])
    assert shares == {"careful": 0.25, "quick": 0.5, "other": 0.25}
    with pytest.raises(ValueError, match="unknown solution style"):
        render_solution(tokens, "sloppy")


def test_style_mixture_follows_the_per_type_shares_and_leaves_problems_alone():
    base = dict(n_sft=4000, n_rl_train=20, n_unlabeled=20, n_test=20, n_hard=20, n_val=20, operators="+-*",
                min_operands=3, max_operands=5, max_digits=1, max_mul=1, hard_min_operands=6, hard_max_operands=7)
    mixed = make_splits(MakeDataArgs(**base, styles=["careful", "quick"], careful_share_mul=0.35,
                                     careful_share_plain=0.9))
    single = make_splits(MakeDataArgs(**base))
    assert [r["problem"] for r in mixed["sft"]] == [r["problem"] for r in single["sft"]]  # styles: own RNG stream
    assert all(r["style"] == "careful" for r in single["sft"])
    for ptype, share in (("mul", 0.35), ("plain", 0.9)):
        rows = [r for r in mixed["sft"] if r["type"] == ptype]
        frac = sum(r["style"] == "careful" for r in rows) / len(rows)
        assert abs(frac - share) < 4 * (share * (1 - share) / len(rows)) ** 0.5, (ptype, frac)
    assert all(r["problem"].count("×") <= 1 for split in mixed.values() for r in split)  # max_mul
    with pytest.raises(ValueError, match="styles"):
        MakeDataArgs(styles=["careful", "fast"]).style_share()


def test_mul_min_factor_bounds_only_the_factors():
    """mul_min_factor: every operand next to × is at least that; the operators are unchanged, and at 0 every draw."""
    spec = TaskSpec(3, 5, 1, "+-*", 1, 0.0, 1)
    strict = replace(spec, mul_min_factor=2).check()
    for i in range(400):
        tokens, default = sample_expression(random.Random(i), strict), sample_expression(random.Random(i), spec)
        factors = {j for j, t in enumerate(tokens) if t == "*"}
        near = {j - 1 for j in factors} | {j + 1 for j in factors}
        assert all(tokens[j] >= 2 for j in near)
        assert tokens[1::2] == default[1::2]  # the operators are drawn first: the same problem shapes
    assert all(sample_expression(random.Random(i), replace(spec, mul_min_factor=0)) ==
               sample_expression(random.Random(i), spec) for i in range(50))
    drawn = [sample_expression(random.Random(i), spec) for i in range(200)]
    assert any(t[j] in (0, 1) for t in drawn for j in range(0, len(t), 2)
               if (j > 0 and t[j - 1] == "*") or (j + 1 < len(t) and t[j + 1] == "*"))  # the default has them
    with pytest.raises(ValueError, match="mul_min_factor"):
        replace(spec, mul_min_factor=10).check()


def test_slips_make_a_consistent_chain_with_a_wrong_value():
    from benchmarks.arith.styles import render_solution
    from benchmarks.arith.task import evaluate, reduce_once, solve_steps

    rng = random.Random(3)
    spec = TaskSpec(3, 6, 2, "+-*", 1, 0.5, None).check()
    for _ in range(200):
        tokens = sample_expression(rng, spec)
        n_ops = len(solve_steps(tokens)) - 1
        slips = {i: rng.choice((1, -1, 2)) for i in range(n_ops) if rng.random() < 0.4}
        steps = solve_steps(tokens, slips)
        assert len(steps) == n_ops + 1 and steps[0] == tokens
        for i in range(n_ops):  # each step is the correct next operation, plus its offset where it slips
            assert steps[i + 1] == reduce_once(steps[i], slips.get(i, 0))
        if "*" not in tokens and "(" not in tokens:  # flat + and -: each slip's offset carries to the end
            assert steps[-1][0] == evaluate(tokens) + sum(slips.values())
        assert solve_steps(tokens, {}) == solve_steps(tokens)
    careful = render_solution([2, "+", 3, "*", 4], "careful", {0: 1})
    assert careful == "Steps: 2 + 3 × 4 = 2 + 13 = 15\n\\boxed{15}"
    assert render_solution([2, "+", 3, "*", 4], "careful", {1: -1}).endswith("= 2 + 12 = 13\n\\boxed{13}")
    with pytest.raises(ValueError, match="careful style"):
        render_solution([2, "+", 3], "quick", {0: 1})


def test_careful_slip_rate_signs_and_streams():
    from benchmarks.arith.make_data import draw_slips

    base = dict(n_sft=3000, n_rl_train=20, n_unlabeled=20, n_test=20, n_hard=20, n_val=20, operators="+-*",
                min_operands=3, max_operands=5, max_digits=1, max_mul=1, hard_min_operands=6, hard_max_operands=7,
                styles=["careful", "quick"], careful_share_mul=0.35, careful_share_plain=0.9)
    clean, noisy = make_splits(MakeDataArgs(**base)), make_splits(MakeDataArgs(**base, careful_slip=0.3))
    for split in clean:  # slips change neither the problems nor the styles nor any other split
        assert [(r["problem"], r.get("style"), r["answer"]) for r in clean[split]] == \
               [(r["problem"], r.get("style"), r["answer"]) for r in noisy[split]]
    assert not any("slips" in r for r in clean["sft"])
    n_ops = sum(r["num_operands"] - 1 for r in noisy["sft"] if r["style"] == "careful")
    offsets = [d for r in noisy["sft"] for _, d in r.get("slips", [])]
    assert abs(len(offsets) / n_ops - 0.3) < 4 * (0.3 * 0.7 / n_ops) ** 0.5
    assert set(offsets) == {1, -1} and abs(offsets.count(1) / len(offsets) - 0.5) < 4 * (0.25 / len(offsets)) ** 0.5
    assert all("slips" not in r for r in noisy["sft"] if r["style"] == "quick")
    for r in noisy["sft"]:  # the boxed value of a solution without x is the answer plus its slips' offsets
        if r["type"] == "plain" and r["style"] == "careful":
            value = int(r["answer"]) + sum(d for _, d in r.get("slips", []))
            assert r["solution"].endswith(f"\\boxed{{{value}}}")
    # the right value stays the likeliest answer of a 3-step chain at rate 0.3 (one-sided slips would lose it)
    rng, finals = random.Random(0), []
    for _ in range(20000):
        finals.append(sum(draw_slips(rng, 3, 0.3).values()))
    assert max(set(finals), key=finals.count) == 0
    assert draw_slips(rng, 5, 0.0) == {}
    with pytest.raises(ValueError, match="careful_slip"):
        MakeDataArgs(careful_slip=0.5).slip()


def test_curriculum_pool():
    from benchmarks.arith.train_nano import curriculum_pool

    rows = [{"style": "quick"}, {"style": "careful"}, {}, {"style": "quick"}]
    assert curriculum_pool(rows, ["careful"], 10, "f") == [1, 2]  # no style field = the single-style corpus
    assert curriculum_pool(rows, [], 0, "f") == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="first_styles"):
        curriculum_pool(rows, [], 5, "f")
    with pytest.raises(ValueError, match="f: no SFT example"):
        curriculum_pool([{"style": "quick"}], ["careful"], 5, "f")


def test_marker_probabilities_match_a_stepwise_decode():
    """P(" " + marker | prompt) at temperature T equals the product of the next-token probabilities of a token-by-token
    decode with a KV cache (an independent path), and sharpening (T -> small) moves the careful share to 0 or 1."""
    torch = pytest.importorskip("torch")
    from benchmarks.arith.model import NanoModelSpec, build_model
    from benchmarks.arith.styles import MARKERS, STYLES, careful_marker_share, marker_probabilities
    from benchmarks.arith.tokenizer import build_tokenizer

    tok = build_tokenizer()
    model = build_model(NanoModelSpec(hidden_size=32, num_layers=1, num_heads=2, num_kv_heads=1,
                                      intermediate_size=64, max_positions=128), tok, seed=3).eval()
    with torch.no_grad():  # a wider spread of logits than the initialisation gives
        model.lm_head.weight.mul_(40.0)
    prompts = ["Problem: Compute 3 × 4 + 1.\nSolution:", "Problem: Compute 7 - 2 - 9.\nSolution:"]
    for T in (0.5, 1.0):
        got = marker_probabilities(model, tok, prompts, temperature=T)
        for prompt, probs in zip(prompts, got):
            assert set(probs) == set(STYLES) and sum(probs.values()) <= 1.0 + 1e-6
            for style in STYLES:
                ids = tok(prompt, add_special_tokens=False)["input_ids"]
                marker = tok(" " + MARKERS[style], add_special_tokens=False)["input_ids"]
                with torch.no_grad():
                    out = model(input_ids=torch.tensor([ids]), use_cache=True)
                    p, past = 1.0, out.past_key_values
                    logits = out.logits[0, -1]
                    for t in marker:
                        p *= float(torch.softmax(logits / T, -1)[t])
                        out = model(input_ids=torch.tensor([[t]]), past_key_values=past, use_cache=True)
                        past, logits = out.past_key_values, out.logits[0, -1]
                assert probs[style] == pytest.approx(p, rel=1e-4)
    warm = [careful_marker_share(p) for p in marker_probabilities(model, tok, prompts, temperature=1.0)]
    cold = [careful_marker_share(p) for p in marker_probabilities(model, tok, prompts, temperature=0.2)]
    for w, c in zip(warm, cold):
        assert 0.0 < w < 1.0 and (c - 0.5) * (w - 0.5) > 0 and abs(c - 0.5) > abs(w - 0.5)
    assert careful_marker_share({"careful": 0.0, "quick": 0.0}) != careful_marker_share({"careful": 0.0, "quick": 0.0})

def test_careful_slip_types_limit_slips_to_those_problem_types():
    base = dict(n_sft=2000, n_rl_train=20, n_unlabeled=20, n_test=20, n_hard=20, n_val=20, operators="+-*",
                min_operands=3, max_operands=5, max_digits=1, max_mul=1, hard_min_operands=6, hard_max_operands=7,
                styles=["careful", "quick"], careful_share_mul=0.35, careful_share_plain=0.9, careful_slip=0.3)
    both = make_splits(MakeDataArgs(**base))["sft"]
    plain = make_splits(MakeDataArgs(**base, careful_slip_types=["plain"]))["sft"]
    assert any("slips" in r for r in both if r["type"] == "mul")
    assert not any("slips" in r for r in plain if r["type"] == "mul")
    # a plain chain slips exactly as when every type slips: restricting the types shifts no other row's slips
    assert [r for r in plain if r["type"] == "plain"] == [r for r in both if r["type"] == "plain"]
    assert [(r["problem"], r["style"]) for r in plain] == [(r["problem"], r["style"]) for r in both]
    with pytest.raises(ValueError, match="careful_slip_types"):
        MakeDataArgs(careful_slip_types=["hard"]).slip_types()


def test_style_accuracy_counts_each_style_and_its_right_answers():
    from benchmarks.arith.styles import MARKERS, classify, style_accuracy

    rng = random.Random(0)
    texts, grades = [], []
    for _ in range(500):
        style = rng.choice(["careful", "quick", "other"])
        texts.append((MARKERS[style] if style != "other" else "") + "2 + 3 = 5\n\\boxed{5}")
        grades.append(rng.random() < 0.5)
    counts = style_accuracy(texts, grades)
    for style in ("careful", "quick", "other"):
        mine = [g for t, g in zip(texts, grades) if classify(t) == style]
        assert counts[style] == (len(mine), sum(mine))
    assert sum(n for n, _ in counts.values()) == len(texts)
    assert style_accuracy([], []) == {"careful": (0, 0), "quick": (0, 0), "other": (0, 0)}
    with pytest.raises(ValueError, match="grades"):
        style_accuracy(["x"], [])
