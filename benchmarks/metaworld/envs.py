"""MetaWorld v3 environments for the PPL stage, through gymnasium.

Six single-task (MT1) environments with a fixed horizon, seeded, headless. Each call to
:func:`reset_episode` draws the episode's goal/object variation from its own seed, so an episode is
reproducible whichever worker process runs it.
"""
from __future__ import annotations

import warnings
from typing import Any

import gymnasium as gym
import numpy as np

TASKS: tuple[str, ...] = ("bin-picking", "button-press", "door-open", "drawer-open", "plate-slide", "sweep-into")
HORIZON = 250
LAYOUTS = 50  # goal/object layouts of an MT1 task (len(MT1 wrapper .tasks)), checked in reset_episode
OBS_DIM = 39
ACT_DIM = 4

# metaworld.policies class for each task's scripted expert.
_EXPERTS = {
    "bin-picking": "SawyerBinPickingV3Policy",
    "button-press": "SawyerButtonPressV3Policy",
    "door-open": "SawyerDoorOpenV3Policy",
    "drawer-open": "SawyerDrawerOpenV3Policy",
    "plate-slide": "SawyerPlateSlideV3Policy",
    "sweep-into": "SawyerSweepIntoV3Policy",
}


def check_task(task: str) -> str:
    """Return ``task`` if it is one of :data:`TASKS`, else raise a ValueError listing the valid ones."""
    if task not in _EXPERTS:
        raise ValueError(f"unknown MetaWorld task {task!r}; valid tasks: {', '.join(TASKS)}")
    return task


def make_env(task: str, seed: int = 0, horizon: int = HORIZON) -> gym.Env:
    """``gymnasium.make("Meta-World/MT1", env_name="<task>-v3")`` with a ``horizon``-step time limit.

    ``seed`` fixes MT1's set of 50 goal/object layouts (the whole stage uses seed 0, so datasets,
    calibration and evaluation share one layout set); :func:`reset_episode` picks one per episode.

    Episodes do not terminate on success (datasets keep the full horizon; evaluation stops early
    by itself once success is reached).
    """
    check_task(task)
    import metaworld  # noqa: F401  (registers the Meta-World/* ids)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        env = gym.make("Meta-World/MT1", env_name=f"{task}-v3", seed=int(seed),
                       max_episode_steps=int(horizon), disable_env_checker=True)
    return env


def _task_wrapper(env: gym.Env):
    """The MT1 wrapper that holds the task's goal/object variations (``.tasks``)."""
    e = env
    while e is not None:
        if hasattr(e, "tasks") and hasattr(e, "toggle_sample_tasks_on_reset"):
            return e
        e = getattr(e, "env", None)
    raise RuntimeError("Meta-World env has no task-selection wrapper; metaworld version changed?")


def reset_episode(env: gym.Env, episode_seed: int) -> tuple[np.ndarray, dict[str, Any]]:
    """Reset ``env`` to the goal variation and initial state determined by ``episode_seed`` alone.

    MT1 draws the episode's variation (one of its 50 goal/object layouts) from the env's own RNG
    state, which depends on the episodes run before; here the variation is chosen from
    ``episode_seed`` and set explicitly, so an episode is identical whichever worker runs it.
    """
    wrapper = _task_wrapper(env)
    wrapper.toggle_sample_tasks_on_reset(False)
    if len(wrapper.tasks) != LAYOUTS:
        raise RuntimeError(f"MT1 has {len(wrapper.tasks)} layouts, expected {LAYOUTS}; metaworld version changed?")
    idx = episode_layout(episode_seed)
    env.unwrapped.set_task(wrapper.tasks[idx])
    obs, info = env.reset(seed=int(episode_seed))
    return np.asarray(obs, dtype=np.float64), info


def episode_layout(episode_seed: int) -> int:
    """Index of the MT1 goal/object layout that :func:`reset_episode` uses for ``episode_seed``."""
    return int(np.random.default_rng([int(episode_seed), 7919]).integers(LAYOUTS))


def stratified_seeds(start: int, count: int) -> list[int]:
    """``count`` episode seeds from ``start`` upwards whose layouts cycle through all of them.

    The i-th seed is the first unused seed >= ``start`` with layout ``i % LAYOUTS``: a sample that
    covers every layout equally, so a success rate measured on it has no layout-sampling noise
    (success depends strongly on the layout) and is still an unbiased estimate for episodes with
    uniformly drawn layouts, as in the datasets.
    """
    free: dict[int, list[int]] = {}
    out: list[int] = []
    s = int(start)
    for i in range(int(count)):
        want = i % LAYOUTS
        while not free.get(want):
            free.setdefault(episode_layout(s), []).append(s)
            s += 1
        out.append(free[want].pop(0))
    return out


def expert_policy(task: str):
    """The task's scripted expert from ``metaworld.policies`` (``.get_action(obs) -> (4,)``)."""
    import metaworld.policies as mp

    return getattr(mp, _EXPERTS[check_task(task)])()
