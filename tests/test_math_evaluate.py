"""End to end: a tiny locally built Qwen2 model, trained for seconds to memorise a few answers,
evaluated through evaluate_model and the CLI (metrics.json + samples.jsonl)."""

import json

import pytest
import torch

from benchmarks.math.datasets import write_jsonl
from benchmarks.math.evaluate import PROTOCOLS, Decode, Protocol, evaluate_model, get_protocol, main
from benchmarks.math.prompts import build_prompt
from benchmarks.math.tiny import build_char_tokenizer, build_tiny_model

# (problem, what the model is taught to answer, gold): 1/2 vs 0.5 must grade correct, 4 vs 5 not.
TAUGHT = [
    ("1 + 1", "2", "2"),
    ("half of 1", "1/2", "0.5"),
    ("2 + 2", "4", "5"),
    ("3 * 3", r"\frac{18}{2}", "9"),
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    torch.set_num_threads(1)
    torch.manual_seed(0)
    tok = build_char_tokenizer()
    model = build_tiny_model(tok, hidden_size=64, layers=2, seed=0)
    texts = [build_prompt(p, "plain") + f" \\boxed{{{a}}}" + tok.eos_token for p, a, _ in TAUGHT]
    enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    labels = enc["input_ids"].masked_fill(enc["attention_mask"] == 0, -100)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(300):
        loss = model(**enc, labels=labels).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    path = tmp_path_factory.mktemp("tiny") / "model"
    model.save_pretrained(path)
    tok.save_pretrained(path)
    rows = [{"id": f"t{i}", "source": "toy", "problem": p, "answer": g} for i, (p, _, g) in enumerate(TAUGHT)]
    return model, tok, path, rows, loss.item()


def test_tiny_protocol_scores_a_model_that_learned(trained):
    model, tok, _, rows, loss = trained
    assert loss < 0.05
    stats = {}
    metrics, samples = evaluate_model(model, tok, {"toy": rows, "toy_b": rows[:2]}, "tiny", "plain",
                                      max_new_tokens=24, grade_workers=0, stats=stats)
    assert set(metrics) == {"toy", "toy_b", "macro"}
    assert stats["gen_tokens"] > 0 and stats["gen_tokens_per_s"] > 0
    m = metrics["toy"]
    assert m["acc_greedy"] == 0.75 and m["acc"] == 0.75  # 4 != 5; 1/2 == 0.5 and 18/2 == 9 count
    assert metrics["toy_b"]["acc_greedy"] == 1.0
    assert metrics["macro"]["acc"] == pytest.approx((0.75 + 1.0) / 2)
    # 8 samples at T=1 of a memorised answer: nearly always the same answer, low entropy
    assert 0.5 <= m["acc_t1"] <= 0.75 and m["pass@8_t1"] <= 0.75 + 1e-9
    assert m["maj@8_t1"] == pytest.approx(0.75)
    assert 0 < m["entropy_t1"] < 1.0
    assert len(samples) == (4 + 2) * (1 + 8)
    greedy = [s for s in samples if s["dataset"] == "toy" and s["decode"] == "greedy"]
    assert [s["answer"] for s in greedy] == ["2", "1/2", "4", r"\frac{18}{2}"]
    assert [s["correct"] for s in greedy] == [True, True, False, True]


def test_sample_level_metrics_are_consistent(trained):
    model, tok, _, rows, _ = trained
    metrics, samples = evaluate_model(model, tok, {"toy": rows}, "tiny", "plain", max_new_tokens=24,
                                      n_samples=4, grade_workers=2)
    t1 = [s for s in samples if s["decode"] == "t1"]
    assert len(t1) == 4 * 4
    assert metrics["toy"]["acc_t1"] == pytest.approx(sum(s["correct"] for s in t1) / len(t1))
    assert metrics["toy"]["tokens_t1"] == pytest.approx(sum(s["tokens"] for s in t1) / len(t1))
    assert "pass@4_t1" in metrics["toy"] and "maj@4_t1" in metrics["toy"]


def test_protocol_presets_follow_the_spec():
    em = PROTOCOLS["entropy_mechanism"]
    assert em.max_new_tokens == 8192
    assert [(d.name, d.n, d.temperature) for d in em.decodes_for("aime24")] == [("t0.6", 32, 0.6)]
    assert [(d.name, d.n, d.temperature) for d in em.decodes_for("math500")] == [("greedy", 1, 0.0)]
    assert PROTOCOLS["empo"].max_new_tokens == 3000
    assert PROTOCOLS["one_shot_em"].max_new_tokens == 3072
    assert [(d.name, d.n) for d in PROTOCOLS["tiny"].decodes] == [("greedy", 1), ("t1", 8)]
    assert get_protocol("entropy_mechanism", n_samples=4).decodes_for("amc23")[0].n == 4
    with pytest.raises(ValueError, match="unknown protocol"):
        get_protocol("lm-eval")


def test_cli_writes_metrics_and_samples(trained, tmp_path):
    from repro.results import read_run

    _, _, path, rows, _ = trained
    write_jsonl(rows, tmp_path / "data" / "toy.jsonl")
    out = tmp_path / "out"
    main(["--model", str(path), "--datasets", "toy", "--data-dir", str(tmp_path / "data"),
          "--protocol", "empo", "--out", str(out), "--paper", "empo", "--method", "base",
          "--model-name", "tiny", "--seed", "3", "--step", "10", "--max-new-tokens", "24",
          "--grade-workers", "1"])
    run = read_run(out / "metrics.json")
    by_metric = {r["metric"]: r for r in run["rows"]}
    assert by_metric["acc_greedy"]["value"] == 0.75
    assert {(r["paper"], r["method"], r["model"], r["dataset"], r["seed"], r["step"]) for r in run["rows"]} == {
        ("empo", "base", "tiny", "toy", 3, 10)}
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert len(samples) == 4
    assert set(samples[0]) >= {"id", "prompt", "completion", "answer", "correct", "tokens"}
    assert samples[0]["prompt"] == "Problem: 1 + 1\nSolution:"


def test_greedy_only_drops_the_sampled_decodes_and_a_set_without_a_decode_is_an_error():
    from benchmarks.math.evaluate import get_protocol

    g = get_protocol("tiny", 4).greedy_only()
    assert [d.name for d in g.decodes] == ["greedy"] and g.headline == ("greedy",) and g.max_new_tokens == 256
    em = get_protocol("entropy_mechanism").greedy_only()
    assert [d.name for d in em.decodes] == ["greedy"] and em.decodes_for("aime24") == []
    with pytest.raises(ValueError, match="no greedy decode"):
        Protocol("s", (Decode("t1", n=2, temperature=1.0),), 8, ("t1",)).greedy_only()
    with pytest.raises(ValueError, match="no decode for dataset 'aime24'"):
        evaluate_model(None, None, {"aime24": [{"id": "a", "problem": "1+1", "answer": "2"}]}, em, "plain")
