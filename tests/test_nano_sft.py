"""A short SFT run of the nano model through its entry point: the loss falls and the saved model
solves problems the untrained model cannot (kept well under a minute on 2 shared cores)."""
from __future__ import annotations

import json

import pytest
from transformers import AutoModelForCausalLM, AutoTokenizer

from benchmarks.arith.make_data import MakeDataArgs, write_splits
from benchmarks.arith.model import NanoModelSpec, build_model
from benchmarks.arith.tokenizer import build_tokenizer
from benchmarks.arith.train_nano import (NanoSFTArgs, boxed_integer, collate, encode_sft, lr_at, main,
                                         quick_accuracy, read_jsonl)
from benchmarks.math.prompts import build_prompt

SMALL = dict(hidden_size=64, num_layers=2, num_heads=4, num_kv_heads=2, intermediate_size=128, max_positions=64)


def test_labels_cover_the_response_only():
    tok = build_tokenizer()
    rows = [{"problem": "Compute 1 + 2.", "solution": "1 + 2 = 3\n\\boxed{3}"},
            {"problem": "Compute 10 - 4 × 2.", "solution": "10 - 4 × 2 = 10 - 8 = 2\n\\boxed{2}"}]
    examples = encode_sft(rows, tok)
    batch = collate(examples, tok.pad_token_id)
    for i, (ids, n_prompt) in enumerate(examples):
        assert tok.decode(ids[:n_prompt]) == build_prompt(rows[i]["problem"], "plain")
        assert tok.decode(ids[:n_prompt]) == f"Problem: {rows[i]['problem']}\nSolution:"
        labels = batch["labels"][i]
        supervised = labels[labels != -100].tolist()
        assert tok.decode(supervised) == " " + rows[i]["solution"] + tok.eos_token
        assert batch["attention_mask"][i].sum().item() == len(ids)


def test_boxed_integer_and_schedule():
    assert boxed_integer("1 + 2 = 3\n\\boxed{3}") == 3
    assert boxed_integer("\\boxed{1} then \\boxed{-12}") == -12
    assert boxed_integer("no answer") is None
    args = NanoSFTArgs(steps=100, warmup_steps=10, lr=1.0, min_lr_ratio=0.1)
    assert lr_at(0, args) == pytest.approx(0.1) and lr_at(9, args) == pytest.approx(1.0)
    assert lr_at(99, args) == pytest.approx(0.1, abs=1e-3)


def test_bad_data_names_file_line_and_field(tmp_path):
    path = tmp_path / "arith_sft.jsonl"
    path.write_text('{"problem": "Compute 1 + 1.", "solution": "x"}\n{"problem": "Compute 2 + 2."}\n')
    with pytest.raises(ValueError, match=r"arith_sft.jsonl:2: missing field 'solution'"):
        read_jsonl(path, required=("problem", "solution"))


@pytest.mark.slow
def test_short_sft_lowers_loss_and_learns(tmp_path):
    data = tmp_path / "data"
    write_splits(MakeDataArgs(out_dir=str(data), seed=0, min_operands=2, max_operands=2, max_digits=1, operators="+",
                              hard_min_operands=3, hard_max_operands=3, n_sft=60, n_rl_train=0, n_unlabeled=0,
                              n_test=40, n_hard=1, n_val=0))
    out = tmp_path / "model"
    argv = [f"--data-dir={data}", f"--out-dir={out}", "--steps=300", "--batch-size=32", "--lr=3e-3",
            "--warmup-steps=20", "--log-every=20", "--eval-every=0", "--seed=0"]
    argv += [f"--{k.replace('_', '-')}={v}" for k, v in SMALL.items()]
    main(argv)

    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in log if r["event"] == "train"]
    assert len(losses) == 15 and losses[-1] < 0.3 * losses[0]
    metrics = json.loads((out / "metrics.json").read_text())
    assert {r["metric"] for r in metrics["rows"]} >= {"sft_loss_final", "parameters", "train_seconds"}

    test = read_jsonl(data / "arith_test.jsonl")
    model = AutoModelForCausalLM.from_pretrained(out)
    tok = AutoTokenizer.from_pretrained(out)
    untrained = build_model(NanoModelSpec(**SMALL), build_tokenizer(), seed=0)
    acc_before = quick_accuracy(untrained, tok, test, max_new_tokens=24)
    acc_after = quick_accuracy(model, tok, test, max_new_tokens=24)
    seen = read_jsonl(data / "arith_sft.jsonl")
    acc_seen = quick_accuracy(model, tok, seen, max_new_tokens=24)
    print(f"accuracy untrained {acc_before:.3f}, trained: held-out {acc_after:.3f}, seen {acc_seen:.3f}")
    assert acc_before == 0.0 and quick_accuracy(untrained, tok, seen, max_new_tokens=24) == 0.0
    assert acc_seen >= 0.9, acc_seen
    assert acc_after >= 0.3, acc_after  # held out: 40 of the 100 one-digit sums never seen in SFT
