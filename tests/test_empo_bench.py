"""The EMPO reward benchmark runs and its synthetic groups really contain equivalent surface forms."""
import json
import random

from benchmarks.perf.empo_bench import BenchArgs, realistic_group, run
from methods.empo.semantic_entropy import semantic_entropy_rewards


def test_bench_small(tmp_path):
    train_log = tmp_path / "train_log.jsonl"
    train_log.write_text(json.dumps({"step": 8, "train_steps_per_second": 2.0}) + "\n")
    rep = run(BenchArgs(prompts=3, group=4, workers=0, repeats=1, train_log=str(train_log),
                        optimiser_steps_per_rollout=4, out=str(tmp_path / "b")))
    assert rep["completions"] == 12 and rep["seconds_serial"] > 0 and rep["seconds_pool"] is None
    assert rep["rollout_step_seconds"] == 2.0
    assert rep["share_of_step_serial"] == rep["seconds_serial"] / 2.0
    assert json.loads((tmp_path / "b" / "bench.json").read_text())["completions"] == 12


def test_realistic_forms_cluster_as_families():
    rng = random.Random(3)
    group = realistic_group(rng, 16)
    assert len(group) == 16
    forms = ["\\frac{1}{2}", "0.5", "1/2", "\\dfrac12"]
    rewards, h = semantic_entropy_rewards([f"\\boxed{{{f}}}" for f in forms] + ["\\boxed{3}"] * 4)
    assert rewards == [0.5] * 8
