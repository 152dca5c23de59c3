"""repro.multirun: several runs of one entry point in one process, each with the results it gets alone."""
import json
import sys

import pytest

from repro.multirun import main as multirun, split_runs


def test_split_runs():
    assert split_runs(["--a", "1", "--", "--b", "2", "--"]) == [["--a", "1"], ["--b", "2"]]
    assert split_runs(["--a"]) == [["--a"]] and split_runs([]) == []


def test_runs_in_order_and_a_failing_run_fails_the_job(tmp_path, monkeypatch):
    (tmp_path / "fake_entry.py").write_text(
        "calls = []\n"
        "def main(argv):\n"
        "    calls.append(list(argv))\n"
        "    return 3 if argv == ['fail'] else {'a dict': 'is a result, not an exit code'}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert multirun(["fake_entry", "x", "--", "y"]) == 0
    import fake_entry

    assert fake_entry.calls == [["x"], ["y"]]
    assert multirun(["fake_entry", "fail", "--", "never"]) == 3
    assert fake_entry.calls[-1] == ["fail"]
    with pytest.raises(SystemExit, match="usage"):
        multirun(["--model", "m"])


def _rows(path):
    rows = json.loads((path / "metrics.json").read_text())["rows"]
    return sorted((r["metric"], r["dataset"], r["step"], r["value"]) for r in rows)


def test_em_runs_after_another_run_get_their_own_results(tmp_path):
    import torch
    from benchmarks.arith.model import NanoModelSpec, build_model
    from benchmarks.arith.tokenizer import build_tokenizer

    tok = build_tokenizer()
    model = build_model(NanoModelSpec(hidden_size=32, num_layers=1, num_heads=2, num_kv_heads=1,
                                      intermediate_size=64, max_positions=128), tok, seed=0)
    model.save_pretrained(tmp_path / "m")
    tok.save_pretrained(tmp_path / "m")
    torch.manual_seed(123)  # whatever the process's RNG state, each run seeds its own

    def flags(out, seed):
        return ["--model", str(tmp_path / "m"), "--out", str(tmp_path / out), "--prompt", "Compute 12 + 7 - 3.",
                "--max-steps", "3", "--micro-batch", "4", "--grad-accum", "2", "--max-new-tokens", "12",
                "--lr", "3e-2", "--sample-temperature", "1.0", "--loss-temperature", "1.0", "--seed", str(seed)]

    assert multirun(["methods.one_shot_em.train", *flags("a", 0), "--", *flags("b", 1), "--", *flags("c", 0)]) == 0
    assert _rows(tmp_path / "a") == _rows(tmp_path / "c")
    assert _rows(tmp_path / "a") != _rows(tmp_path / "b")


def test_rl_runs_after_another_run_get_their_own_results(tmp_path):
    pytest.importorskip("trl")
    from tests.test_engine_trainer import tiny_model, tiny_tokenizer

    tok = tiny_tokenizer()
    tiny_model(tok, seed=1).save_pretrained(tmp_path / "m")
    tok.save_pretrained(tmp_path / "m")
    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps({"id": i, "problem": f"{i}+1", "answer": str(i + 1)}) + "\n"
                            for i in range(16)))

    def flags(out, seed):
        return ["--model", str(tmp_path / "m"), "--train-data", str(data), "--out", str(tmp_path / out),
                "--policy-loss", "clip_cov", "--reward", "verifiable", "--prompts-per-step", "4",
                "--num-generations", "4", "--ppo-minibatches", "2", "--micro-batch-size", "8", "--rollout-steps", "2",
                "--learning-rate", "2e-2", "--max-completion-length", "8", "--val-data", str(data), "--val-limit", "4",
                "--val-every", "2", "--seed", str(seed)]

    assert multirun(["methods.engine.train_rl", *flags("a", 0), "--", *flags("b", 1), "--", *flags("c", 0)]) == 0
    assert _rows(tmp_path / "a") == _rows(tmp_path / "c")
    assert _rows(tmp_path / "a") != _rows(tmp_path / "b")
