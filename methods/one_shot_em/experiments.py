"""One-shot EM experiment plan: run names and the flags of each run (used by rules/one_shot_em.smk).

Runs per model: ``one_shot_em`` (main, T_s = sample_temperature, ``seeds``), ``em_ts<T>`` (the
sampling-temperature sweep), ``rl_then_em`` (EM from the GRPO model, order.em_steps) and
``em_then_rl`` (GRPO from the EM checkpoint at order.em_steps; flags from the empo stage's plan) and,
with ``control.enabled``, ``em_confident``: the main run's settings on the control prompt, the one the selection
samples answered right most often (not the paper's choice; a diagnostic of what EM amplifies) and, with
``ranks.enabled``, ``em_rank<r>``: the main run's settings on the prompt ranked r by the selection's variance
(r = 2..ranks.top; rank 1 is the main run), ``ranks.steps`` steps, evaluated greedily at the last step only. The
top of the ranking is a near-tie (p(1 - p) within sampling noise of 0.25), so which prompt EM gets is close to a
coin flip among them: these runs measure how much the result depends on that choice.
"""
from __future__ import annotations

from typing import Any


def fmt(v: float) -> str:
    return f"{v:g}"


def em_methods(cfg: dict) -> dict[str, float]:
    """EM run name -> sampling temperature (main run first; the sweep skips the main value)."""
    runs = {"one_shot_em": float(cfg["sample_temperature"])}
    for t in cfg.get("temperature_sweep", []):
        if float(t) != float(cfg["sample_temperature"]):
            runs[f"em_ts{fmt(t)}"] = float(t)
    return runs


def rank_methods(cfg: dict) -> dict[str, int]:
    """Prompt-sensitivity run name -> rank of its prompt in the selection ranking (2..ranks.top)."""
    ranks = cfg.get("ranks", {})
    if not ranks.get("enabled"):
        return {}
    return {f"em_rank{r}": r for r in range(2, int(ranks["top"]) + 1)}


def seeds_for(cfg: dict, method: str) -> list[int]:
    order = cfg.get("order", {})
    if method in rank_methods(cfg):
        return list(cfg["ranks"].get("seeds", []))
    if method == "one_shot_em":
        return list(cfg["seeds"])
    if method in ("rl_then_em", "em_then_rl"):
        return list(order.get("seeds", [])) if order.get("enabled") else []
    if method == "em_confident":
        control = cfg.get("control", {})
        return list(control.get("seeds", [])) if control.get("enabled") else []
    return list(cfg.get("temperature_sweep_seeds", []))


def select_args(cfg: dict) -> dict[str, Any]:
    """Flags of ``python -m methods.one_shot_em.select`` from the ``select`` section.

    The k samples come from EM's own rollout distribution unless the section says otherwise:
    temperature null/absent -> ``sample_temperature`` (T_s), top_p absent -> the rollouts' ``top_p``.
    """
    sel = dict(cfg.get("select", {}))
    if sel.get("temperature") is None:
        sel["temperature"] = float(cfg["sample_temperature"])
    sel.setdefault("top_p", cfg.get("top_p", 0.95))
    if rank_methods(cfg):
        sel["ranks"] = int(cfg["ranks"]["top"])  # also write the prompts ranked 2..top (selected_rank<r>.json)
    return sel


def launcher(cfg: dict) -> str:
    """The command that starts one EM training job: ``accelerate launch`` when the tier asks for it."""
    from shlex import quote

    kind = cfg.get("launcher", "python")
    if kind == "accelerate":
        if not cfg.get("accelerate_config"):
            raise ValueError("one_shot_em: launcher 'accelerate' needs accelerate_config")
        return (f"accelerate launch --config_file {quote(str(cfg['accelerate_config']))} "
                f"--num_processes {int(cfg.get('num_processes', 1))} -m methods.one_shot_em.train")
    if kind != "python":
        raise ValueError(f"one_shot_em: unknown launcher {kind!r} (python | accelerate)")
    return "python -m methods.one_shot_em.train"


def world_size(cfg: dict) -> int:
    """Processes per EM job (num_processes under accelerate, else 1)."""
    return int(cfg.get("num_processes", 1)) if cfg.get("launcher", "python") == "accelerate" else 1


def order_steps(cfg: dict) -> int:
    return int(cfg.get("order", {}).get("em_steps", cfg["max_steps"]))


def em_train_args(cfg: dict, method: str, model_name: str, model_path: str, seed: int, data_dir: str,
                  out: str, prompt_file: str | None = None, threads: int = 1) -> dict[str, Any]:
    """Flags of ``python -m methods.one_shot_em.train`` for one run.

    ``model_path`` is the starting model (for ``rl_then_em``: the GRPO model). The main runs save the
    checkpoint at order.em_steps (the EM->RL start and the skewness subject) and at the last step.
    """
    methods, ranked = em_methods(cfg), rank_methods(cfg)
    if method not in methods and method not in ranked and method not in ("rl_then_em", "em_confident"):
        raise ValueError(f"one_shot_em: unknown EM method {method!r} "
                         f"(known: {sorted(methods) + sorted(ranked)} + rl_then_em, em_confident)")
    max_steps, eval_steps = int(cfg["max_steps"]), list(cfg["eval_steps"])
    ts = methods.get(method, float(cfg["sample_temperature"]))
    if method == "rl_then_em":
        max_steps = order_steps(cfg)
        eval_steps = sorted({0, max_steps})
    if method in ranked:  # step 0 is the base model's evaluation, the same for every prompt (main run's step 0)
        max_steps = int(cfg["ranks"]["steps"])
        eval_steps = [max_steps]
    bad = [s for s in eval_steps if s > max_steps]
    if bad:
        raise ValueError(f"one_shot_em.eval_steps {bad} exceed max_steps={max_steps}")
    sampled = cfg.get("eval_sampled_steps")
    if sampled is not None:
        stray = sorted(set(sampled) - set(cfg["eval_steps"]))
        if stray:
            raise ValueError(f"one_shot_em.eval_sampled_steps {stray} are not in one_shot_em.eval_steps {cfg['eval_steps']}")
        sampled = sorted(set(sampled) & set(eval_steps))  # rl_then_em evaluates only its start and its end
    if method in ranked:
        sampled = []  # greedy only: the sensitivity reads greedy accuracy and styles
    save = sorted({s for s in (order_steps(cfg), max_steps) if s <= max_steps})
    args: dict[str, Any] = dict(
        model=model_path, out=out, template=cfg.get("template", "plain"), sample_temperature=ts,
        top_p=cfg.get("top_p", 0.95), repetition_penalty=cfg.get("repetition_penalty", 1.0),
        loss_temperature=cfg.get("loss_temperature", 0.5), lr=cfg.get("lr", 2e-5),
        weight_decay=cfg.get("weight_decay", 0.01), grad_clip=cfg.get("grad_clip", 1.0),
        micro_batch=cfg.get("micro_batch", 8), grad_accum=cfg.get("grad_accum", 8), max_steps=max_steps,
        max_new_tokens=cfg.get("max_new_tokens", 512), save_steps=save, eval_steps=eval_steps,
        eval_datasets=list(cfg["eval_datasets"]), data_dir=data_dir, eval_protocol=cfg.get("eval_protocol", "tiny"),
        eval_limit=cfg.get("eval_limit"), eval_n_samples=cfg.get("eval_n_samples"),
        eval_sampled_steps=sampled,
        eval_max_new_tokens=cfg.get("eval_max_new_tokens"), bf16=cfg.get("bf16", False), seed=seed, threads=threads,
        method=method, model_name=model_name, rollout_backend=cfg.get("rollout_backend", "hf"),
        gradient_checkpointing=cfg.get("gradient_checkpointing", False), world_size=world_size(cfg),
    )
    if method == "em_confident" and cfg.get("prompt") is not None:
        raise ValueError("one_shot_em.control needs the selection step (prompt: null): a fixed prompt has no control")
    if cfg.get("prompt") is not None:
        args["prompt"] = cfg["prompt"]
    elif prompt_file is not None:
        args["prompt_file"] = prompt_file
    else:
        raise ValueError("one_shot_em: no fixed `prompt` and no selection file")
    return args
