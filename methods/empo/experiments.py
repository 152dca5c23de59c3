"""EMPO experiment plan: which runs a config section asks for and the flags of each run.

Used by ``rules/empo.smk`` (so the wiring is testable without Snakemake). Runs per model:
``base`` (evaluation only), ``grpo`` (verifiable reward on gold answers, model saved),
``empo`` (semantic-entropy reward, default thresholds) and ``empo_dh<v>`` (delta_high = v).
EMPO and GRPO share one budget: the same rollout geometry, steps, learning rate and lengths.
"""
from __future__ import annotations

import json
from typing import Any


def fmt(v: float) -> str:
    """Compact number for method names: 1.2 -> '1.2', 1.0 -> '1'."""
    return f"{v:g}"


def empo_methods(cfg: dict) -> list[str]:
    """EMPO run names: 'empo' plus one 'empo_dh<v>' per sweep value."""
    return ["empo"] + [f"empo_dh{fmt(v)}" for v in cfg.get("delta_high_sweep", [])]


def seeds_for(cfg: dict, method: str) -> list[int]:
    """Main runs (empo, grpo) use ``seeds``; sweep runs use ``sweep_seeds``."""
    return list(cfg["seeds"]) if method in ("empo", "grpo") else list(cfg.get("sweep_seeds", []))


def delta_high_of(cfg: dict, method: str) -> float | None:
    if method.startswith("empo_dh"):
        try:
            return float(method[len("empo_dh"):])
        except ValueError:
            raise ValueError(f"empo: cannot read delta_high from method name {method!r}") from None
    return cfg.get("delta_high")


def train_rl_args(cfg: dict, method: str, model_name: str, model_path: str, seed: int, data_dir: str,
                  out: str, threads: int = 1) -> dict[str, Any]:
    """Flags of ``python -m methods.engine.train_rl`` for one run (``method`` = grpo | empo | empo_dh<v>)."""
    grpo = method == "grpo"
    if not grpo and not method.startswith("empo"):
        raise ValueError(f"empo: unknown method {method!r} (grpo, empo, empo_dh<value>)")
    reward_kwargs = {} if grpo else dict(
        delta_low=cfg.get("delta_low", 0.0), delta_high=delta_high_of(cfg, method),
        empty_reward_zero=cfg.get("empty_reward_zero", False), workers=cfg.get("reward_workers", 0))
    args: dict[str, Any] = dict(
        model=model_path, template=cfg.get("template", "plain"),
        train_data=f"{data_dir}/{cfg['grpo_train_data' if grpo else 'train_data']}.jsonl",
        train_limit=cfg.get("train_limit"),
        policy_loss="grpo", importance_sampling_level=cfg.get("importance_sampling_level", "token"),
        reward="verifiable" if grpo else "semantic_entropy", reward_kwargs=json.dumps(reward_kwargs),
        num_generations=cfg["num_generations"], prompts_per_step=cfg["prompts_per_step"],
        ppo_minibatches=cfg.get("ppo_minibatches", 1), micro_batch_size=cfg.get("micro_batch_size", 16),
        rollout_steps=cfg["rollout_steps"], learning_rate=cfg.get("learning_rate", 1e-4),
        temperature=cfg.get("temperature", 1.0), top_p=cfg.get("top_p", 1.0),
        max_completion_length=cfg.get("max_completion_length", 64),
        val_data=f"{data_dir}/{cfg.get('val_split') or cfg['eval_datasets'][0]}.jsonl", val_limit=cfg.get("val_limit", 64),
        val_every=cfg.get("val_every", 4), eval_datasets=list(cfg["eval_datasets"]), eval_data_dir=data_dir,
        eval_protocol=cfg.get("eval_protocol", "tiny"), eval_limit=cfg.get("eval_limit"),
        eval_max_new_tokens=cfg.get("eval_max_new_tokens"), eval_n_samples=cfg.get("eval_n_samples"), use_vllm=cfg.get("use_vllm", False), bf16=cfg.get("bf16", False),
        gradient_checkpointing=cfg.get("gradient_checkpointing", False), save_model=grpo,
        paper="empo", method=method, model_name=model_name, seed=seed, threads=threads, out=out,
    )
    for key in ("eps_low", "eps_high"):
        if cfg.get(key) is not None:
            args[key] = cfg[key]
    return args


def launcher(cfg: dict) -> str:
    """The command that starts one EMPO / GRPO job (``accelerate launch`` over ``num_processes`` GPUs when the
    tier asks for it; before, EMPO always ran as one plain process whatever ``gpus`` said)."""
    from methods.engine.launch import train_rl_launcher

    return train_rl_launcher(cfg, "empo")


# flags that do not change what GRPO trains on or how it is evaluated at the end
_NOT_COMPARED = ("out", "paper", "method", "val_data", "val_limit", "val_every", "save_model", "eval_batch_size",
                 "threads")


def shared_grpo(empo_cfg: dict, entmech_cfg: dict, model_name: str, model_path: str, data_dir: str) -> bool:
    """Whether EMPO's GRPO baseline is the entropy-mechanism stage's GRPO run (``grpo_runs: entropy_mechanism``).

    Raises ValueError naming the first flag on which the two runs would differ: sharing is only honest when the
    runs are the same run.
    """
    if empo_cfg.get("grpo_runs") != "entropy_mechanism":
        return False
    from methods.entropy_mechanism.experiments import train_rl_args as entmech_args

    if "grpo" not in entmech_cfg.get("methods", {}) or model_name not in entmech_cfg.get("models", {}):
        raise ValueError(f"empo.grpo_runs: entropy_mechanism has no grpo run of model {model_name!r}")
    missing = sorted(set(seeds_for(empo_cfg, "grpo")) - set(entmech_cfg["seeds"]))
    if missing:
        raise ValueError(f"empo.grpo_runs: seeds {missing} of empo.seeds have no entropy_mechanism grpo run")
    from dataclasses import asdict

    from methods.engine.train_rl import TrainRLArgs

    defaults = asdict(TrainRLArgs())  # a flag a plan leaves out takes train_rl's default
    a = {**defaults, **train_rl_args(empo_cfg, "grpo", model_name, model_path, 0, data_dir, "x")}
    b = {**defaults, **entmech_args(entmech_cfg, "grpo", model_name, model_path, 0, data_dir, "x")}
    for key in sorted(set(a) | set(b)):
        if key in _NOT_COMPARED:
            continue
        if a.get(key) != b.get(key):
            raise ValueError(f"empo.grpo_runs = entropy_mechanism, but the GRPO runs differ in {key!r}: "
                             f"empo {a.get(key)!r} vs entropy_mechanism {b.get(key)!r}")
    return True
