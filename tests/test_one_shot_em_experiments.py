"""One-shot EM experiment plan and every tier's config through the EM entry point's dry run."""
import json
from pathlib import Path

import pytest
import yaml

from methods.one_shot_em.experiments import (em_methods, em_train_args, launcher, rank_methods, select_args, seeds_for,
                                             world_size)
from methods.one_shot_em.train import main as em_main
from repro.cli import to_argv

ROOT = Path(__file__).resolve().parent.parent


def section(tier):
    return yaml.safe_load((ROOT / "config" / f"{tier}.yaml").read_text())["one_shot_em"]


def test_plan():
    cfg = dict(sample_temperature=0.5, temperature_sweep=[0.3, 0.5, 0.9], temperature_sweep_seeds=[0], seeds=[0, 1, 2],
               max_steps=40, eval_steps=[0, 2, 5, 10, 20, 40], eval_datasets=["a"], order={"enabled": True, "em_steps": 10, "seeds": [0]})
    assert em_methods(cfg) == {"one_shot_em": 0.5, "em_ts0.3": 0.3, "em_ts0.9": 0.9}
    assert seeds_for(cfg, "one_shot_em") == [0, 1, 2] and seeds_for(cfg, "rl_then_em") == [0]
    a = em_train_args(cfg, "em_ts0.9", "nano", "M", 0, "D", "O", prompt_file="sel.json")
    assert a["sample_temperature"] == 0.9 and a["save_steps"] == [10, 40] and a["prompt_file"] == "sel.json"
    r = em_train_args(cfg, "rl_then_em", "nano", "GRPO", 0, "D", "O", prompt_file="sel.json")
    assert r["max_steps"] == 10 and r["eval_steps"] == [0, 10] and r["model"] == "GRPO"
    with pytest.raises(ValueError, match="eval_steps"):
        em_train_args({**cfg, "max_steps": 5}, "one_shot_em", "nano", "M", 0, "D", "O", prompt_file="s")
    # eval_sampled_steps: the main runs take them as given, rl_then_em the ones among its own eval steps
    part = {**cfg, "eval_sampled_steps": [0, 10, 40]}
    assert em_train_args(part, "one_shot_em", "nano", "M", 0, "D", "O", prompt_file="s")["eval_sampled_steps"] == [0, 10, 40]
    assert em_train_args(part, "rl_then_em", "nano", "G", 0, "D", "O", prompt_file="s")["eval_sampled_steps"] == [0, 10]
    assert em_train_args(cfg, "one_shot_em", "nano", "M", 0, "D", "O", prompt_file="s")["eval_sampled_steps"] is None
    with pytest.raises(ValueError, match="eval_sampled_steps"):
        em_train_args({**cfg, "eval_sampled_steps": [3]}, "one_shot_em", "nano", "M", 0, "D", "O", prompt_file="s")


@pytest.mark.parametrize("tier", ["config", "ci", "paper"])
def test_every_tier_dry_runs(tier, capsys):
    cfg = section(tier)
    for method in list(em_methods(cfg)):
        args = em_train_args(cfg, method, next(iter(cfg["models"])), "M", 0, "D", "O", prompt_file="sel.json")
        em_main(to_argv(args) + ["--dry-run", "true"])
        plan = json.loads(capsys.readouterr().out)
    if tier == "paper":
        assert plan["effective_batch"] == 64 and plan["lr"] == 2e-5 and plan["max_steps"] == 10
        assert plan["sample_temperature"] == 0.5 == plan["loss_temperature"] and plan["max_new_tokens"] == 512
        assert plan["bf16"] is True and plan["prompt"].endswith("32 pounds.") and plan["prompt_file"] is None


def test_selection_defaults_to_the_rollout_distribution():
    cfg = dict(sample_temperature=0.3, top_p=0.9, select={"k": 32, "temperature": None})
    assert select_args(cfg) == {"k": 32, "temperature": 0.3, "top_p": 0.9}
    assert select_args({**cfg, "select": {"temperature": 1.0, "top_p": 1.0}})[("temperature")] == 1.0
    for tier in ("config", "ci", "paper"):
        c = section(tier)
        assert select_args(c)["temperature"] == c["sample_temperature"] and select_args(c)["top_p"] == c["top_p"]
    assert section("config")["select"]["k"] >= 32  # tiny tier: p(1-p) from 32 samples, not 8


def test_launcher_per_tier():
    assert launcher(section("config")) == launcher(section("ci")) == "python -m methods.one_shot_em.train"
    paper = section("paper")
    assert launcher(paper) == ("accelerate launch --config_file config/accelerate/fsdp.yaml --num_processes 8 "
                               "-m methods.one_shot_em.train")
    args = em_train_args(paper, "one_shot_em", "qwen", "M", 0, "D", "O")
    assert args["world_size"] == world_size(paper) == 8
    assert args["micro_batch"] * args["grad_accum"] * args["world_size"] == 64  # the paper's effective batch
    with pytest.raises(ValueError, match="accelerate_config"):
        launcher({"launcher": "accelerate", "accelerate_config": None})
    with pytest.raises(ValueError, match="launcher"):
        launcher({"launcher": "srun"})


def test_fsdp_config_is_an_accelerate_fsdp2_config():
    from accelerate.commands.config.config_args import load_config_from_file

    cfg = load_config_from_file(str(ROOT / section("paper")["accelerate_config"]))
    assert cfg.distributed_type == "FSDP" and cfg.mixed_precision == "bf16"
    assert cfg.fsdp_config["fsdp_version"] == 2
    assert cfg.fsdp_config["fsdp_transformer_layer_cls_to_wrap"] == "Qwen2DecoderLayer"
    assert cfg.num_processes == section("paper")["num_processes"]


def test_control_run_and_prompt():
    from methods.one_shot_em.select import control_prompt
    from methods.one_shot_em.selection import rank_by_variance

    cfg = dict(sample_temperature=0.5, seeds=[0, 1, 2], max_steps=40, eval_steps=[0, 10, 40], eval_datasets=["a"],
               control={"enabled": True, "seeds": [0, 1]})
    assert seeds_for(cfg, "em_confident") == [0, 1] and seeds_for({**cfg, "control": {}}, "em_confident") == []
    a = em_train_args(cfg, "em_confident", "nano", "M", 0, "D", "O", prompt_file="ctrl.json")
    assert a["prompt_file"] == "ctrl.json" and a["eval_steps"] == [0, 10, 40] and a["sample_temperature"] == 0.5
    pool = [{"id": f"p{i}", "problem": f"Compute {i}.", "answer": str(i)} for i in range(5)]
    # p = 0.5, 1.0, 0.25, 1.0, 0.75: the variance choice is p0; the control is the first all-right prompt, p1
    successes = [[1, 0, 1, 0], [1, 1, 1, 1], [1, 0, 0, 0], [1, 1, 1, 1], [1, 1, 1, 0]]
    ranked = rank_by_variance(pool, successes)
    assert ranked[0].row["id"] == "p0" and control_prompt(pool, ranked).row["id"] == "p1"
    # without an all-right prompt: the most accurate one, earliest among ties
    ranked = rank_by_variance(pool, [[1, 0]] * 2 + [[1, 1, 1, 0]] * 3)
    assert control_prompt(pool, ranked).row["id"] == "p2"


def test_prompt_rank_runs():
    """ranks: em_rank<r> for r = 2..top, the main run's settings for ranks.steps steps, greedy at the end only."""
    cfg = dict(sample_temperature=0.5, seeds=[0, 1, 2], max_steps=40, eval_steps=[0, 10, 40], eval_datasets=["a"],
               eval_sampled_steps=[0, 10], order={"enabled": True, "em_steps": 10, "seeds": [0]},
               ranks={"enabled": True, "top": 4, "seeds": [0], "steps": 10}, select={"k": 32})
    assert rank_methods(cfg) == {"em_rank2": 2, "em_rank3": 3, "em_rank4": 4}
    assert rank_methods({**cfg, "ranks": {**cfg["ranks"], "enabled": False}}) == {} == rank_methods({"seeds": [0]})
    assert seeds_for(cfg, "em_rank3") == [0] and select_args(cfg)["ranks"] == 4
    a = em_train_args(cfg, "em_rank3", "nano", "M", 0, "D", "O", prompt_file="selected_rank3.json")
    main = em_train_args(cfg, "one_shot_em", "nano", "M", 0, "D", "O", prompt_file="selected.json")
    assert (a["max_steps"], a["eval_steps"], a["eval_sampled_steps"], a["save_steps"]) == (10, [10], [], [10])
    same = ("sample_temperature", "lr", "micro_batch", "grad_accum", "loss_temperature", "top_p", "eval_datasets")
    assert {k: a[k] for k in same} == {k: main[k] for k in same} and a["prompt_file"] == "selected_rank3.json"
    with pytest.raises(ValueError, match="unknown EM method 'em_rank5'"):
        em_train_args(cfg, "em_rank5", "nano", "M", 0, "D", "O", prompt_file="s")
    tiny = section("config")
    assert len(rank_methods(tiny)) == tiny["ranks"]["top"] - 1 <= tiny["select"]["pool_limit"] - 1
