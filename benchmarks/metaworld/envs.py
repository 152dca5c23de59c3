"""MetaWorld v3 environments for the PPL stage, through gymnasium.

Six single-task (MT1) environments with a fixed horizon, seeded, headless. Each call to
:func:`reset_episode` draws the episode's goal/object variation from its own seed, so an episode is
reproducible whichever worker process runs it.
"""
from __future__ import annotations

import math
import sys
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
    use_fast_quaternions(type(env.unwrapped).__module__)
    use_fast_contacts(env.unwrapped)
    return env


# ----------------------------------------------------------------------------------------------
# Gripper contacts without a Python loop over every contact
# ----------------------------------------------------------------------------------------------
# SawyerXYZEnv.touching_object (sweep-into's grasp reward calls it every step) walks data.contact twice in
# Python, building a struct view per contact: ~0.25 ms of a ~0.9 ms step. The same test on the contact
# arrays selects the same contacts in the same order and sums their forces in that order (the same bits).


def touching_object(env, object_geom_id: int) -> bool:
    """``SawyerXYZEnv.touching_object``: both finger pads have positive contact force with the object."""
    data = env.data
    con = data.contact
    g1, g2 = con.geom1, con.geom2
    with_obj = (g1 == object_geom_id) | (g2 == object_geom_id)
    forces = []
    for pad in ("leftpad_geom", "rightpad_geom"):
        pid = data.geom(pad).id
        rows = np.flatnonzero(with_obj & ((g1 == pid) | (g2 == pid))).tolist()
        addr = con.efc_address
        forces.append(sum(data.efc_force[addr[r]] for r in rows))
    return 0 < forces[0] and 0 < forces[1]


def use_fast_contacts(env) -> bool:
    """Give this env instance :func:`touching_object` in place of the per-contact loop. True if replaced."""
    if not callable(getattr(env, "touching_object", None)) or not hasattr(env, "data"):
        return False
    env.touching_object = touching_object.__get__(env)
    return True


# ----------------------------------------------------------------------------------------------
# Object quaternions without scipy's per-call overhead
# ----------------------------------------------------------------------------------------------
# door-open, plate-slide and sweep-into build their observation's object quaternion with
# ``scipy.spatial.transform.Rotation.from_matrix(xmat).as_quat()`` on every step. For one 3x3 matrix that
# costs ~0.1 ms (array-API dispatch, a determinant, an isclose), ~20% of a whole env step; the arithmetic is
# nine numbers. quat_from_matrix below does scipy's own computation (its validity checks, then Markley's
# branch on the largest of the diagonal and the trace, then normalisation) in plain floats, in scipy's
# operation order, so it returns the same bits (tested against scipy on random and on simulated rotations);
# anything it does not cover exactly (batches, keyword arguments, matrices that are not orthonormal to
# 1e-12 or have det <= 0) goes to scipy itself.


def quat_from_matrix(matrix) -> np.ndarray | None:
    """scipy's ``Rotation.from_matrix(m).as_quat()`` (x, y, z, w) for one orthonormal 3x3 ``m``; None where
    scipy would orthonormalise the matrix (by SVD) or reject it, so the caller can defer to scipy."""
    m = np.asarray(matrix, dtype=np.float64)
    if m.shape != (3, 3):
        return None
    rows = m.tolist()
    (a00, a01, a02), (a10, a11, a12), (a20, a21, a22) = rows
    det = (a00 * (a11 * a22 - a12 * a21) - a01 * (a10 * a22 - a12 * a20) + a02 * (a10 * a21 - a11 * a20))
    if not det > 0.5:  # scipy raises for det <= 0; far from 1 the gramian test below fails anyway
        return None
    for i in range(3):  # scipy: isclose(m @ m.T, I, rtol=1e-5, atol=1e-12) or it orthonormalises by SVD
        for j in range(3):
            g = rows[i][0] * rows[j][0] + rows[i][1] * rows[j][1] + rows[i][2] * rows[j][2]
            eye = 1.0 if i == j else 0.0
            if abs(g - eye) > 0.9 * (1e-12 + 1e-5 * eye):  # inside scipy's tolerance: borderline cases -> scipy
                return None
    trace = a00 + a11 + a22
    decision = (a00, a11, a22, trace)
    choice = max(range(4), key=decision.__getitem__)  # the first maximum, as argmax
    if choice == 3:
        q = [a21 - a12, a02 - a20, a10 - a01, 1 + trace]
    else:
        i, j, k = choice, (choice + 1) % 3, (choice + 2) % 3
        q = [0.0, 0.0, 0.0, rows[k][j] - rows[j][k]]
        q[i] = 1 - trace + 2 * rows[i][i]
        q[j] = rows[j][i] + rows[i][j]
        q[k] = rows[k][i] + rows[i][k]
    norm = math.sqrt(q[0] * q[0] + q[1] * q[1] + q[2] * q[2] + q[3] * q[3])
    return np.array([x / norm for x in q])


class _Quaternion:
    """What ``Rotation.from_matrix(m)`` is used for in MetaWorld: ``.as_quat()``."""

    def __init__(self, matrix):
        self.matrix = matrix

    def as_quat(self, *args, **kwargs) -> np.ndarray:
        q = None if (args or kwargs) else quat_from_matrix(self.matrix)
        if q is None:
            from scipy.spatial.transform import Rotation

            return Rotation.from_matrix(self.matrix).as_quat(*args, **kwargs)
        return q


class _FastRotation:
    """Stands in for scipy's ``Rotation`` inside one MetaWorld env module; every other use goes to scipy."""

    from_matrix = staticmethod(_Quaternion)

    def __getattr__(self, name):
        from scipy.spatial.transform import Rotation

        return getattr(Rotation, name)


def use_fast_quaternions(module_name: str) -> bool:
    """Swap scipy's ``Rotation`` in the env class's module for :class:`_FastRotation` (same numbers, ~30x
    cheaper per call). True if the module uses it; idempotent."""
    from scipy.spatial.transform import Rotation

    mod = sys.modules.get(module_name)
    if mod is None or getattr(mod, "Rotation", None) is not Rotation:
        return isinstance(getattr(mod, "Rotation", None), _FastRotation)
    mod.Rotation = _FastRotation()
    return True


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
