"""EMPO end to end on CPU through the shared engine: the policy changes (answer distribution
sharpens towards the majority) and gold answers cannot influence training."""
import json
import math

import pytest

pytest.importorskip("trl")

torch = pytest.importorskip("torch")

from methods.empo.curves import CurvesArgs, curve_rows  # noqa: E402

ANSWERS = ["2", "3", "4"]
PROBS = [0.5, 0.3, 0.2]  # the pre-trained policy's answer distribution (uncertain, with a majority)


def _prompt(i):
    return f"Problem: Compute {i} + 1.\nSolution:"


@pytest.fixture(scope="module")
def uncertain_model(tmp_path_factory):
    """A ~30k-parameter Qwen2 taught to answer ' \\boxed{d}' with d ~ PROBS regardless of the problem."""
    from benchmarks.arith.model import NanoModelSpec, build_model
    from benchmarks.arith.tokenizer import build_tokenizer

    torch.manual_seed(0)
    tok = build_tokenizer()
    model = build_model(NanoModelSpec(hidden_size=32, num_layers=1, num_heads=2, num_kv_heads=1,
                                      intermediate_size=64, max_positions=64), tok, seed=0)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(0)
    for _ in range(120):
        idx = torch.multinomial(torch.tensor(PROBS), 32, replacement=True, generator=g)
        texts = [_prompt(i % 8) + f" \\boxed{{{ANSWERS[k]}}}" + tok.eos_token for i, k in enumerate(idx.tolist())]
        enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        labels = enc["input_ids"].masked_fill(enc["attention_mask"] == 0, -100)
        loss = model(**enc, labels=labels).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    path = tmp_path_factory.mktemp("uncertain")
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


def answer_distribution(model_dir):
    """P(answer digit | prompt + ' \\boxed{') averaged over the 8 training prompts."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    ids = [tok.convert_tokens_to_ids(a) for a in ANSWERS]
    probs = torch.zeros(len(ANSWERS))
    for i in range(8):
        enc = tok(_prompt(i) + " \\boxed{", return_tensors="pt", add_special_tokens=False)
        with torch.no_grad():
            p = torch.softmax(model(**enc).logits[0, -1], -1)[ids]
        probs += p / p.sum() / 8
    return probs


def _run(model_dir, data, out, seed=0):
    from methods.engine import train_rl

    rc = train_rl.main(["--model", str(model_dir), "--train-data", str(data), "--out", str(out),
                        "--policy-loss", "grpo", "--reward", "semantic_entropy", "--num-generations", "8",
                        "--prompts-per-step", "4", "--ppo-minibatches", "1", "--micro-batch-size", "32",
                        "--rollout-steps", "5", "--learning-rate", "5e-3", "--max-completion-length", "10",
                        "--save-model", "true", "--paper", "empo", "--method", "empo", "--seed", str(seed)])
    assert rc == 0
    return [json.loads(x) for x in (out / "train_log.jsonl").read_text().splitlines()]


def test_empo_changes_policy_and_ignores_labels(uncertain_model, tmp_path):
    before = answer_distribution(uncertain_model)
    assert before[0] > before[1] > 0.05 and before[2] > 0.05  # uncertain, with a majority

    unlabeled = tmp_path / "unlabeled.jsonl"
    unlabeled.write_text("".join(json.dumps({"id": i, "problem": f"Compute {i} + 1.", "answer": None}) + "\n"
                                 for i in range(8)))
    log = _run(uncertain_model, unlabeled, tmp_path / "run")
    after = answer_distribution(tmp_path / "run" / "model")
    h = lambda p: float(-(p * p.log()).sum())  # noqa: E731
    print("answer distribution before", before.tolist(), "after", after.tolist())
    # EMPO rewards agreement with the majority: the answer distribution sharpens, majority grows
    assert h(after) < h(before) - 0.05, (before.tolist(), after.tolist())
    assert after[0] > before[0]
    stats = [r for r in log if r.get("empo/semantic_entropy") is not None]
    assert stats and all(0 <= r["empo/semantic_entropy"] <= math.log(8) + 1e-6 for r in stats)
    rows = curve_rows((tmp_path / "run" / "train_log.jsonl").read_text().splitlines(), CurvesArgs(run_dir="x"))
    assert {r["metric"] for r in rows} == {"semantic_entropy", "frac_filtered"}

    # the no-label guarantee, end to end: gold answers (true or scrambled) change nothing
    labelled = tmp_path / "labelled.jsonl"
    labelled.write_text("".join(json.dumps({"id": i, "problem": f"Compute {i} + 1.", "answer": str(i + 1 if i % 2 else 99)})
                                + "\n" for i in range(8)))
    log2 = _run(uncertain_model, labelled, tmp_path / "run2")
    keys = ["empo/semantic_entropy", "empo/frac_filtered", "reward", "loss"]
    assert [[r.get(k) for k in keys] for r in log2] == [[r.get(k) for k in keys] for r in log]
