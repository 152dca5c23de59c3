"""Entropy-Mechanism experiment plan: which runs a config section asks for and the flags of each run.

Used by ``rules/entropy_mechanism.smk`` (so the wiring is testable without Snakemake). Per model in
``cfg["models"]`` and method in ``cfg["methods"]`` (grpo, clip_higher, clip_cov, kl_cov, ...), one RL run per
seed through ``python -m methods.engine.train_rl`` with the verifiable reward; all methods of a model share one
budget (``cfg["train"]`` plus the model's ``model_overrides[model]["train"]``) and differ only in the policy
loss and its options (``cfg["methods"][method]`` plus ``model_overrides[model]["methods"][method]``).
"""
from __future__ import annotations

from typing import Any

LOSS_KEYS = ("eps_low", "eps_high", "clip_ratio", "cov_lb", "cov_ub", "k_ratio", "kl_coef")


def train_options(cfg: dict, model_name: str) -> dict[str, Any]:
    """The shared budget of ``model_name`` (section ``train`` updated by the model's overrides)."""
    over = (cfg.get("model_overrides") or {}).get(model_name, {})
    return {**cfg["train"], **over.get("train", {})}


def steps_per_rollout(cfg: dict, model_name: str) -> int:
    """Optimiser steps each rollout feeds (``ppo_minibatches``, train_rl's default when unset): the law's entropy
    is one value per rollout over that many logged steps."""
    from methods.engine.train_rl import TrainRLArgs

    return int(train_options(cfg, model_name).get("ppo_minibatches", TrainRLArgs.ppo_minibatches))


def method_spec(cfg: dict, method: str, model_name: str) -> dict[str, Any]:
    if method not in cfg["methods"]:
        raise ValueError(f"entropy_mechanism: unknown method {method!r}; configured: {sorted(cfg['methods'])}")
    over = (cfg.get("model_overrides") or {}).get(model_name, {}).get("methods", {}).get(method, {})
    return {**cfg["methods"][method], **over}


def train_rl_args(cfg: dict, method: str, model_name: str, model_path: str, seed: int, data_dir: str,
                  out: str, threads: int = 1) -> dict[str, Any]:
    """Flags of ``python -m methods.engine.train_rl`` for one (model, method, seed) run."""
    spec = method_spec(cfg, method, model_name)
    data = cfg["train_data"]
    args: dict[str, Any] = dict(
        model=model_path, template=cfg.get("template", "plain"),
        train_data=data if data.startswith("hub:") else f"{data_dir}/{data}.jsonl",
        train_limit=cfg.get("train_limit"), policy_loss=spec["policy_loss"], reward="verifiable",
        **train_options(cfg, model_name),
        val_data=f"{data_dir}/{cfg['val_split']}.jsonl",
        eval_datasets=list(cfg["eval"]["datasets"]), eval_data_dir=data_dir, eval_protocol=cfg["eval"]["protocol"],
        eval_limit=cfg["eval"].get("limit"), eval_max_new_tokens=cfg["eval"].get("max_new_tokens"),
        eval_n_samples=cfg["eval"].get("n_samples"),
        paper="entropy_mechanism", method=method, model_name=model_name, seed=seed, threads=threads, out=out,
    )
    for key in LOSS_KEYS:
        if spec.get(key) is not None:
            args[key] = spec[key]
    if method in cfg.get("save_model_methods", []):  # e.g. GRPO, whose model the EMPO stage can reuse
        args["save_model"] = True
    return args


def launcher(cfg: dict) -> str:
    """The command that starts one training job (accelerate for multi-GPU jobs)."""
    from methods.engine.launch import train_rl_launcher

    return train_rl_launcher(cfg, "entropy_mechanism")


def run_dirs(cfg: dict, work) -> list[tuple[str, str, int, str]]:
    """(model, method, seed, run dir) of every training run; ``work(*parts)`` builds a path."""
    return [(m, meth, s, work("entropy_mechanism", m, meth, f"seed{s}"))
            for m in cfg["models"] for meth in cfg["methods"] for s in cfg["seeds"]]


def law_methods(cfg: dict) -> list[str]:
    unknown = [m for m in cfg["law"]["methods"] if m not in cfg["methods"]]
    if unknown:
        raise ValueError(f"entropy_mechanism.law.methods: {unknown} are not configured methods")
    return list(cfg["law"]["methods"])
