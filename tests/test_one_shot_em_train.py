"""One-shot EM: a short CPU run lowers the entropy; config errors; oracle labels; skewness helper."""
import json

import numpy as np
import pytest

from methods.one_shot_em.select import arith_oracle_answer
from methods.one_shot_em.skewness import step_skewness
from methods.one_shot_em.train import EMArgs, main as em_main


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory):
    """A randomly initialised ~50k-parameter Qwen2 with the arith character tokenizer."""
    import torch
    from benchmarks.arith.model import NanoModelSpec, build_model
    from benchmarks.arith.tokenizer import build_tokenizer

    torch.manual_seed(0)
    tok = build_tokenizer()
    model = build_model(NanoModelSpec(hidden_size=32, num_layers=1, num_heads=2, num_kv_heads=1,
                                      intermediate_size=64, max_positions=128), tok, seed=0)
    path = tmp_path_factory.mktemp("tiny_model")
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


def test_short_em_run_lowers_entropy(tiny_model_dir, tmp_path):
    pytest.importorskip("benchmarks.math.prompts")
    out = tmp_path / "em"
    em_main(["--model", str(tiny_model_dir), "--out", str(out), "--prompt", "Compute 12 + 7 - 3.",
             "--max-steps", "6", "--micro-batch", "4", "--grad-accum", "2", "--max-new-tokens", "12",
             "--lr", "3e-2", "--sample-temperature", "1.0", "--loss-temperature", "1.0",
             "--save-steps", "0,6", "--seed", "0"])
    log = [json.loads(x) for x in (out / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == list(range(1, 7))  # one record per optimiser step
    assert log[-1]["loss"] < 0.8 * log[0]["loss"], [r["loss"] for r in log]
    assert (out / "checkpoints" / "step_0").is_dir() and (out / "checkpoints" / "step_6").is_dir()
    metrics = json.loads((out / "metrics.json").read_text())
    loss_rows = [r for r in metrics["rows"] if r["metric"] == "loss"]
    assert [r["step"] for r in loss_rows] == list(range(1, 7))
    # deterministic: the same seed reproduces the same losses
    out2 = tmp_path / "em2"
    em_main(["--model", str(tiny_model_dir), "--out", str(out2), "--prompt", "Compute 12 + 7 - 3.",
             "--max-steps", "2", "--micro-batch", "4", "--grad-accum", "2", "--max-new-tokens", "12",
             "--lr", "3e-2", "--sample-temperature", "1.0", "--loss-temperature", "1.0", "--seed", "0"])
    log2 = [json.loads(x) for x in (out2 / "train_log.jsonl").read_text().splitlines()]
    assert [r["loss"] for r in log2] == pytest.approx([r["loss"] for r in log[:2]], rel=1e-5)


def test_config_errors_name_the_field(tmp_path):
    with pytest.raises(ValueError, match="prompt"):
        EMArgs(model="m", out="o").check()
    with pytest.raises(ValueError, match="eval_steps"):
        EMArgs(model="m", out="o", prompt="p", max_steps=3, eval_steps=[5]).check()
    with pytest.raises(ValueError, match="top_p"):
        EMArgs(model="m", out="o", prompt="p", top_p=0.0).check()


def test_paper_config_dry_run(capsys):
    em_main(["--model", "Qwen/Qwen2.5-Math-7B", "--out", "/tmp/never", "--prompt", "wind", "--lr", "2e-5",
             "--micro-batch", "8", "--grad-accum", "8", "--max-steps", "10", "--bf16", "true", "--dry-run", "true"])
    plan = json.loads(capsys.readouterr().out)
    assert plan["effective_batch"] == 64 and plan["bf16"] is True


def test_arith_oracle_answer():
    assert arith_oracle_answer("Compute 23 + 5 × (7 - 2).") == "48"
    assert arith_oracle_answer("Compute 3 - 8 + 2.") == "-3"
    with pytest.raises(ValueError):
        arith_oracle_answer("Compute __import__('os').")
    with pytest.raises(ValueError):
        arith_oracle_answer("What is 2+2?")


def test_step_skewness_matches_direction():
    rng = np.random.default_rng(0)
    right = rng.exponential(size=(3, 500))  # right-skewed rows
    left = -right
    valid = np.array([True, True, False])
    s_r, s_l = step_skewness(right, valid), step_skewness(left, valid)
    assert s_r.shape == (2,) and (s_r > 1).all() and np.allclose(s_l, -s_r)
    m = right[0]
    direct = np.mean((m - m.mean()) ** 3) / np.mean((m - m.mean()) ** 2) ** 1.5
    assert s_r[0] == pytest.approx(direct)


def test_em_evaluates_listed_steps(tiny_model_dir, tmp_path):
    pytest.importorskip("benchmarks.math.evaluate")
    data = tmp_path / "data"
    data.mkdir()
    (data / "toy.jsonl").write_text("".join(json.dumps({"id": f"t{i}", "source": "toy", "problem": f"Compute {i} + 1.",
                                                        "answer": str(i + 1)}) + "\n" for i in range(3)))
    out = tmp_path / "em_eval"
    em_main(["--model", str(tiny_model_dir), "--out", str(out), "--prompt", "Compute 1 + 1.", "--max-steps", "2",
             "--micro-batch", "2", "--grad-accum", "1", "--max-new-tokens", "8", "--eval-steps", "0,2",
             "--eval-datasets", "toy", "--data-dir", str(data), "--eval-protocol", "tiny",
             "--eval-max-new-tokens", "8", "--method", "one_shot_em"])
    rows = json.loads((out / "metrics.json").read_text())["rows"]
    evals = {(r["step"], r["metric"]) for r in rows if r["dataset"] == "toy"}
    for step in (0, 2):
        assert {(step, "acc_greedy"), (step, "acc_t1"), (step, "pass@8_t1")} <= evals
    assert all(r["method"] == "one_shot_em" and r["paper"] == "one_shot_em" for r in rows)
    samples = [json.loads(x) for x in (out / "samples.jsonl").read_text().splitlines()]
    assert {s["step"] for s in samples} == {0, 2}
    assert not any(r["dataset"] == "prompt" for r in rows)  # a fixed --prompt has no selection numbers

    # --eval-sampled-steps 2: step 0 decodes greedily only; the greedy rows and the training are unchanged
    part = tmp_path / "em_eval_part"
    em_main(["--model", str(tiny_model_dir), "--out", str(part), "--prompt", "Compute 1 + 1.", "--max-steps", "2",
             "--micro-batch", "2", "--grad-accum", "1", "--max-new-tokens", "8", "--eval-steps", "0,2",
             "--eval-sampled-steps", "2", "--eval-datasets", "toy", "--data-dir", str(data), "--eval-protocol",
             "tiny", "--eval-max-new-tokens", "8", "--method", "one_shot_em"])
    prow = json.loads((part / "metrics.json").read_text())["rows"]
    got = {(r["step"], r["metric"]): r["value"] for r in prow if r["dataset"] == "toy"}
    full = {(r["step"], r["metric"]): r["value"] for r in rows if r["dataset"] == "toy"}
    assert (0, "acc_greedy") in got and not any(k[0] == 0 and k[1].endswith("_t1") for k in got)
    assert {k: v for k, v in full.items() if k[0] == 2 or not k[1].endswith("_t1")} == got
    with pytest.raises(ValueError, match="eval_sampled_steps"):
        EMArgs(model="m", out="o", prompt="p", max_steps=3, eval_steps=[0, 3], eval_sampled_steps=[1]).check()


def _toy_data(dirpath, name, n=3, answers=True):
    dirpath.mkdir(exist_ok=True)
    (dirpath / f"{name}.jsonl").write_text("".join(
        json.dumps({"id": f"{name}-{i}", "source": name, "problem": f"Compute {i} + 1.",
                    "answer": str(i + 1) if answers else None}) + "\n" for i in range(n)))
    return dirpath


def test_select_and_skewness_entry_points(tiny_model_dir, tmp_path):
    pytest.importorskip("benchmarks.math.generation")
    from methods.one_shot_em.select import main as select_main
    from methods.one_shot_em.skewness import main as skew_main

    data = _toy_data(tmp_path / "d", "pool", answers=False)
    out = tmp_path / "sel" / "selected.json"
    select_main(["--model", str(tiny_model_dir), "--out", str(out), "--data-dir", str(data), "--pool", "pool",
                 "--k", "2", "--max-new-tokens", "6", "--labels", "arith_oracle"])
    chosen = json.loads(out.read_text())
    assert chosen["problem"].startswith("Compute") and chosen["answer"] == arith_oracle_answer(chosen["problem"])
    ranking = [json.loads(x) for x in (tmp_path / "sel" / "selected_ranking.jsonl").read_text().splitlines()]
    assert len(ranking) == 3 and ranking[0]["score"] == max(r["score"] for r in ranking)
    # arith_oracle labels: the arith testbed, so every record carries the careful-marker share of the base model
    assert all(0.0 <= r["p_careful_marker"] <= 1.0 for r in ranking)
    assert chosen["p_careful_marker"] == ranking[0]["p_careful_marker"]
    # and its selection samples by style: the careful share and each style's accuracy (None where no sample took it)
    for r in ranking:
        assert 0.0 <= r["careful_share_samples"] <= 1.0
        for style in ("careful", "quick"):
            a = r[f"acc_{style}_samples"]
            assert a is None or 0.0 <= a <= 1.0
    control = json.loads((tmp_path / "sel" / "selected_control.json").read_text())
    assert control["p_careful_marker"] in [r["p_careful_marker"] for r in ranking]
    # --ranks 3: the prompts ranked 2 and 3 next to the winner, in ranking order
    select_main(["--model", str(tiny_model_dir), "--out", str(out), "--data-dir", str(data), "--pool", "pool",
                 "--k", "2", "--max-new-tokens", "6", "--labels", "arith_oracle", "--ranks", "3"])
    written = [json.loads(out.read_text())] + [json.loads((out.parent / f"selected_rank{r}.json").read_text())
                                               for r in (2, 3)]
    assert [w["rank"] for w in written] == [1, 2, 3]
    assert [w["problem"] for w in written] == [r["problem"] for r in ranking]
    with pytest.raises(ValueError, match="ranks=4 .* pool pool has .3"):
        select_main(["--model", str(tiny_model_dir), "--out", str(out), "--data-dir", str(data), "--pool", "pool",
                     "--k", "2", "--labels", "arith_oracle", "--ranks", "4"])
    with pytest.raises(ValueError, match="no 'answer'"):
        select_main(["--model", str(tiny_model_dir), "--out", str(out), "--data-dir", str(data), "--pool", "pool",
                     "--k", "2", "--max-new-tokens", "6", "--labels", "column"])

    _toy_data(data, "test")
    skew_dir = tmp_path / "skew"
    skew_main(["--model", str(tiny_model_dir), "--out", str(skew_dir), "--data-dir", str(data), "--dataset", "test",
               "--n-prompts", "2", "--max-new-tokens", "5", "--method", "base"])
    rows = json.loads((skew_dir / "metrics.json").read_text())["rows"]
    assert [r["metric"] for r in rows] == ["logit_skewness"] and np.isfinite(rows[0]["value"])
    steps = [json.loads(x) for x in (skew_dir / "skew_steps.jsonl").read_text().splitlines()]
    assert len(steps) == 2 and all(1 <= s["steps"] <= 5 and len(s["skew"]) == s["steps"] for s in steps)
    assert rows[0]["value"] == pytest.approx(np.mean([s["mean_skew"] for s in steps]))
    # the model as its own reference: the same seeded samples, so the teacher-forced logits are generate's
    ref_dir = tmp_path / "skew_ref"
    skew_main(["--model", str(tiny_model_dir), "--out", str(ref_dir), "--data-dir", str(data), "--dataset", "test",
               "--n-prompts", "2", "--max-new-tokens", "5", "--method", "x", "--reference-model", str(tiny_model_dir)])
    got = {r["metric"]: r["value"] for r in json.loads((ref_dir / "metrics.json").read_text())["rows"]}
    assert got["logit_skewness"] == rows[0]["value"]
    assert got["logit_skewness_on_reference"] == pytest.approx(got["logit_skewness"], rel=1e-5)


def test_prompt_metrics_come_from_the_selection_file(tmp_path):
    from methods.one_shot_em.train import prompt_metrics

    sel = tmp_path / "selected_rank2.json"
    sel.write_text(json.dumps({"problem": "Compute 3 + 6 × 3.", "rank": 2, "score": 0.25, "accuracy": 0.5, "k": 32,
                               "p_careful_marker": 0.4, "careful_share_samples": 0.25, "acc_careful_samples": 1.0,
                               "acc_quick_samples": None}))
    assert prompt_metrics(EMArgs(model="m", out="o", prompt_file=str(sel))) == {
        "selection_rank": 2.0, "selection_score": 0.25, "selection_accuracy": 0.5, "selection_p_careful_marker": 0.4,
        "selection_careful_share_samples": 0.25, "selection_acc_careful": 1.0}  # None (no quick sample): no row
    assert prompt_metrics(EMArgs(model="m", out="o", prompt="Compute 1 + 1.")) == {}
    sel.write_text(json.dumps({"question": "x"}))
    with pytest.raises(ValueError, match="missing key 'problem'"):
        prompt_metrics(EMArgs(model="m", out="o", prompt_file=str(sel)))
