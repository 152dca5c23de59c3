"""Entropy-Mechanism experiment plan: same budget for every method, per-model overrides, every tier dry-runs."""
import json
from pathlib import Path

import pytest
import yaml

from methods.entropy_mechanism.experiments import launcher, law_methods, run_dirs, train_rl_args

ROOT = Path(__file__).resolve().parent.parent


def section(tier):
    return yaml.safe_load((ROOT / "config" / f"{tier}.yaml").read_text())["entropy_mechanism"]


def test_plan_budget_and_loss_options():
    cfg = section("config")
    runs = run_dirs(cfg, lambda *p: "/".join(map(str, p)))
    assert len(runs) == len(cfg["methods"]) * len(cfg["seeds"]) >= 8 and len(cfg["seeds"]) >= 2
    args = {m: train_rl_args(cfg, m, "nano", "M", 0, "D", "O") for m in cfg["methods"]}
    budget = set(cfg["train"]) | {"train_data", "val_data", "eval_datasets", "template", "reward"}
    for m, a in args.items():
        assert all(a[k] == args["grpo"][k] for k in budget), m
        assert a["policy_loss"] == cfg["methods"][m]["policy_loss"]
    assert args["clip_higher"]["eps_high"] == 0.28 and "k_ratio" in args["kl_cov"]
    assert cfg["train"]["ppo_minibatches"] > 1  # KL-Cov's penalty needs off-policy mini-batches
    assert launcher(cfg) == "python -m methods.engine.train_rl"
    with pytest.raises(ValueError, match="unknown method"):
        train_rl_args(cfg, "ppo", "nano", "M", 0, "D", "O")


def test_paper_overrides_per_model():
    cfg = section("paper")
    a7 = train_rl_args(cfg, "kl_cov", "qwen2.5-7b", "Qwen/Qwen2.5-7B", 0, "D", "O")
    a32 = train_rl_args(cfg, "kl_cov", "qwen2.5-32b", "Qwen/Qwen2.5-32B", 0, "D", "O")
    assert a7["k_ratio"] == 2e-3 and a32["k_ratio"] == 2e-4
    assert a7["learning_rate"] == 5e-7 and a32["learning_rate"] == 1e-6
    cc = train_rl_args(cfg, "clip_cov", "qwen2.5-7b", "M", 0, "D", "O")
    assert (cc["clip_ratio"], cc["cov_lb"], cc["cov_ub"], cc["eps_low"], cc["eps_high"]) == (2e-4, 1.0, 5.0, 1.0, 1.0)
    assert a7["train_data"].startswith("hub:")
    assert launcher(cfg).startswith("accelerate launch --config_file config/accelerate/zero3.yaml")
    assert (ROOT / cfg["accelerate_config"]).is_file()
    assert law_methods(cfg) == ["grpo", "clip_higher"]


@pytest.mark.parametrize("tier,world", [("config", 1), ("ci", 1), ("paper", 8)])
def test_every_tier_dry_runs(tier, world, monkeypatch, capsys):
    pytest.importorskip("trl")
    from methods.engine import train_rl
    from repro.cli import to_argv

    cfg = section(tier)
    monkeypatch.setenv("WORLD_SIZE", str(world))
    for model, path in cfg["models"].items():
        for method in cfg["methods"]:
            args = train_rl_args(cfg, method, model, path, 0, "D", "O")
            assert train_rl.main(to_argv(args) + ["--dry-run", "true"]) == 0
            out = json.loads(capsys.readouterr().out)
            assert out["args"]["policy_loss"] == cfg["methods"][method]["policy_loss"]
            assert out["grpo"]["steps_per_generation"] == \
                out["grpo"]["gradient_accumulation_steps"] * args["ppo_minibatches"]
    if tier == "paper":  # the spec's setup: 256 prompts x 8, 8 updates per rollout, T = 1, 8192 tokens
        assert out["batch"]["generation_batch_size"] == 256 * 8 and out["batch"]["minibatch"] == 32 * 8
        assert out["grpo"]["use_vllm"] is True and out["grpo"]["vllm_mode"] == "colocate"
        assert out["grpo"]["max_completion_length"] == 8192 and out["grpo"]["temperature"] == 1.0
        assert out["grpo"]["max_grad_norm"] == 1.0 and out["grpo"]["weight_decay"] == 0.0
