"""The command that starts one ``methods.engine.train_rl`` job: plain python, or ``accelerate launch`` for the
GPU tiers (one job over several GPUs, DeepSpeed / FSDP from the config's accelerate file). Used by the
entropy-mechanism and EMPO rules, so both papers' runs start the same way."""
from __future__ import annotations

from shlex import quote


def train_rl_launcher(cfg: dict, section: str) -> str:
    """``cfg`` = a stage's config section with ``launcher`` (python | accelerate), ``accelerate_config`` and
    ``num_processes``; ``section`` names it in errors."""
    kind = cfg.get("launcher", "python")
    if kind == "accelerate":
        if not cfg.get("accelerate_config"):
            raise ValueError(f"{section}: launcher 'accelerate' needs accelerate_config")
        return (f"accelerate launch --config_file {quote(str(cfg['accelerate_config']))} "
                f"--num_processes {int(cfg.get('num_processes', 1))} -m methods.engine.train_rl")
    if kind != "python":
        raise ValueError(f"{section}: unknown launcher {kind!r} (python | accelerate)")
    return "python -m methods.engine.train_rl"
