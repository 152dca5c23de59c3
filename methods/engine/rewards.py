"""Reward registry: reward functions for TRL's ``GRPOTrainer``, selected by a config string.

A reward function has TRL's signature ``f(prompts, completions, **columns) -> list[float]``, where
``columns`` are the dataset's other columns (e.g. ``answer``) plus TRL's extras (``completion_ids``,
``trainer_state``, ``log_metric``, ...). The registry stores *factories*: ``factory(**options)`` returns
such a function, so a reward can carry state or options (EMPO's clustering thresholds). A factory that
takes a ``num_generations`` argument receives the trainer's group size automatically.

Register a new reward in one line, anywhere that is imported before training::

    from methods.engine.rewards import register_reward
    register_reward("my_reward", my_factory)               # or "package.module:factory" (imported lazily)

and select it with ``--reward my_reward`` (``python -m methods.engine.train_rl``).
"""
from __future__ import annotations

import importlib
import inspect
from typing import Any, Callable

RewardFunc = Callable[..., list[float]]

_REGISTRY: dict[str, Callable[..., RewardFunc] | str] = {}


def register_reward(name: str, factory: Callable[..., RewardFunc] | str, *, replace: bool = False) -> None:
    """Register ``factory`` (a callable or a lazy ``"module:attr"`` path) under ``name``.

    Re-registering a name raises unless ``replace=True`` or the old entry is a lazy path (a module
    registering its own reward replaces the placeholder)."""
    old = _REGISTRY.get(name)
    if old is not None and not replace and not isinstance(old, str) and old is not factory:
        raise ValueError(f"reward {name!r} is already registered ({old!r}); pass replace=True to override")
    _REGISTRY[name] = factory


def available_rewards() -> list[str]:
    return sorted(_REGISTRY)


def _resolve(name: str) -> Callable[..., RewardFunc]:
    if name not in _REGISTRY:
        raise ValueError(f"unknown reward {name!r}; registered: {', '.join(available_rewards())}")
    factory = _REGISTRY[name]
    if isinstance(factory, str):
        module, _, attr = factory.partition(":")
        factory = getattr(importlib.import_module(module), attr)
        _REGISTRY[name] = factory
    return factory


def make_reward(name: str, num_generations: int | None = None, **options: Any) -> RewardFunc:
    """Build the reward function registered as ``name`` with ``options`` (and the group size if wanted)."""
    factory = _resolve(name)
    params = inspect.signature(factory).parameters
    if num_generations is not None and "num_generations" in params and "num_generations" not in options:
        options["num_generations"] = num_generations
    unknown = [k for k in options if k not in params and not any(
        p.kind == inspect.Parameter.VAR_KEYWORD for p in params.values())]
    if unknown:
        raise ValueError(f"reward {name!r}: unknown option(s) {unknown}; accepted: {list(params)}")
    fn = factory(**options)
    if not getattr(fn, "__name__", None):
        try:
            fn.__name__ = name  # TRL names the reward's log columns after __name__
        except (AttributeError, TypeError):
            pass
    return fn


# ----------------------------------------------------------------------------------------------------------------
# built-in: the verifiable (rule-based) math reward
# ----------------------------------------------------------------------------------------------------------------
def _text(completion: Any) -> str:
    """TRL passes plain strings, or for conversational data a list of {"role", "content"} messages."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list) and completion and isinstance(completion[-1], dict):
        return str(completion[-1].get("content", ""))
    return str(completion)


def verifiable_reward(answer_column: str = "answer", timeout_s: float = 5.0, workers: int = 0) -> RewardFunc:
    """1.0 if the completion's last ``\\boxed{}`` answer is math-verify-equivalent to the gold answer, else 0.0.

    The gold answer is read from the dataset column ``answer_column`` and used only here.
    ``workers > 0`` grades in a process pool (``benchmarks.math.grading.grade_many``); 0 grades inline.
    """
    from benchmarks.math.grading import grade, grade_many

    def verifiable(prompts=None, completions=None, **columns) -> list[float]:
        if answer_column not in columns:
            raise KeyError(f"verifiable reward: the dataset has no {answer_column!r} column "
                           f"(columns: {sorted(k for k in columns if not k.startswith('_'))})")
        golds = [str(g) for g in columns[answer_column]]
        texts = [_text(c) for c in completions]
        if len(golds) != len(texts):
            raise ValueError(f"verifiable reward: {len(texts)} completions but {len(golds)} answers")
        if workers > 0:
            ok = grade_many(list(zip(texts, golds)), timeout_s=timeout_s, workers=workers)
        else:
            ok = [grade(t, g, timeout_s=timeout_s) for t, g in zip(texts, golds)]
        return [1.0 if o else 0.0 for o in ok]

    return verifiable


register_reward("verifiable", verifiable_reward)
register_reward("semantic_entropy", "methods.empo.semantic_entropy:make_reward")  # EMPO (label-free)
