"""The nano stage's three commands from a tier config (used by rules/nano.smk and by ``make verify``).

One place builds the flags of ``benchmarks.arith.make_data``, ``benchmarks.arith.train_nano`` and the baseline
``benchmarks.math.evaluate``, so the workflow and the from-scratch check run exactly the same thing.
"""
from __future__ import annotations

from typing import Any


def data_options(config: dict) -> dict[str, Any]:
    return dict(config["nano"]["data"])


def sft_options(config: dict) -> dict[str, Any]:
    nano = config["nano"]
    return {**nano["model"], **nano["train"], "threads": config["threads"]}


def eval_options(config: dict) -> dict[str, Any]:
    return {"seed": config["seed"], "backend": "hf", **config["nano"]["eval"], "template": "plain",
            "paper": "nano", "method": "base", "model_name": "nano", "threads": config["threads"]}


def commands(config: dict, data_dir: str, model_dir: str, eval_dir: str, python: str = "python") -> list[list[str]]:
    """argv of the three nano steps writing to the given directories."""
    from repro.cli import to_argv

    return [
        [python, "-m", "benchmarks.arith.make_data", "--out-dir", data_dir, *to_argv(data_options(config))],
        [python, "-m", "benchmarks.arith.train_nano", "--data-dir", data_dir, "--out-dir", model_dir,
         *to_argv(sft_options(config))],
        [python, "-m", "benchmarks.math.evaluate", "--model", model_dir, "--data-dir", data_dir, "--out", eval_dir,
         *to_argv(eval_options(config))],
    ]
