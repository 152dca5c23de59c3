"""EMPO experiment plan: run names, seeds, flags; every tier's config dry-runs through train_rl."""
import json
from pathlib import Path

import pytest
import yaml

from methods.empo.experiments import empo_methods, seeds_for, train_rl_args

ROOT = Path(__file__).resolve().parent.parent


def section(tier):
    return yaml.safe_load((ROOT / "config" / f"{tier}.yaml").read_text())["empo"]


def test_plan_names_and_rewards():
    cfg = dict(seeds=[0, 1], sweep_seeds=[0], delta_high_sweep=[0.7, 1.2], train_data="u", grpo_train_data="l",
               eval_datasets=["a", "b"], num_generations=4, prompts_per_step=2, rollout_steps=1, delta_low=0.1)
    assert empo_methods(cfg) == ["empo", "empo_dh0.7", "empo_dh1.2"]
    assert seeds_for(cfg, "grpo") == [0, 1] and seeds_for(cfg, "empo_dh0.7") == [0]
    e = train_rl_args(cfg, "empo_dh1.2", "nano", "M", 3, "D", "O")
    assert e["reward"] == "semantic_entropy" and e["train_data"] == "D/u.jsonl" and not e["save_model"]
    assert json.loads(e["reward_kwargs"]) == {"delta_low": 0.1, "delta_high": 1.2, "empty_reward_zero": False, "workers": 0}
    g = train_rl_args(cfg, "grpo", "nano", "M", 3, "D", "O")
    assert g["reward"] == "verifiable" and g["train_data"] == "D/l.jsonl" and g["save_model"]
    # same budget for EMPO and its GRPO baseline
    budget = ("num_generations", "prompts_per_step", "ppo_minibatches", "rollout_steps", "learning_rate",
              "max_completion_length", "temperature")
    assert all(e[k] == g[k] for k in budget)
    with pytest.raises(ValueError, match="unknown method"):
        train_rl_args(cfg, "ppo", "nano", "M", 0, "D", "O")


@pytest.mark.parametrize("tier,world", [("config", 1), ("ci", 1), ("paper", 8)])
def test_every_tier_dry_runs(tier, world, monkeypatch, capsys):
    pytest.importorskip("trl")
    from methods.engine import train_rl

    cfg = section(tier)
    monkeypatch.setenv("WORLD_SIZE", str(world))
    for method in ["grpo"] + empo_methods(cfg):
        model = next(iter(cfg["models"].values()))
        args = train_rl_args(cfg, method, next(iter(cfg["models"])), model, 0, "D", "O")
        argv = [a for k, v in args.items() for a in _flag(k, v)] + ["--dry-run", "true"]
        assert train_rl.main(argv) == 0
        out = json.loads(capsys.readouterr().out)
        assert out["args"]["reward"] == ("verifiable" if method == "grpo" else "semantic_entropy")
    if tier == "paper":  # the final EMPO paper setting
        assert out["grpo"]["importance_sampling_level"] == "sequence" and out["grpo"]["num_generations"] == 16
        assert out["grpo"]["learning_rate"] == 5e-7 and out["grpo"]["max_completion_length"] == 3072
        assert out["batch"]["generation_batch_size"] == 256 * 16 and out["grpo"]["use_vllm"] is True
        assert out["loss_kwargs"] == {"eps_low": 3e-4, "eps_high": 4e-4}


def _flag(k, v):
    from repro.cli import to_argv

    return to_argv({k: v})


def test_grpo_baseline_is_shared_only_when_the_runs_are_identical():
    """empo.grpo_runs = entropy_mechanism reuses that stage's GRPO runs only if every training and evaluation
    flag is equal; a difference is named."""
    import copy

    import yaml

    from methods.empo.experiments import shared_grpo

    cfg = yaml.safe_load(open("config/config.yaml"))
    empo, entmech = cfg["empo"], cfg["entropy_mechanism"]
    args = ("nano", "work/tiny/nano/model", "work/tiny/data/arith")
    assert shared_grpo(empo, entmech, *args) is (empo.get("grpo_runs") == "entropy_mechanism")
    e2 = copy.deepcopy(empo)
    e2["grpo_runs"] = "entropy_mechanism"
    e2["learning_rate"] = 1e-3
    with pytest.raises(ValueError, match="learning_rate"):
        shared_grpo(e2, entmech, *args)
    e2 = copy.deepcopy(empo)
    e2["grpo_runs"] = None
    assert shared_grpo(e2, entmech, *args) is False
