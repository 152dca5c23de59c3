"""Behaviour policies with exact labels, episode rollouts, and success-rate calibration.

PPL (Cho et al., ICML 2025, arXiv 2505.06273) needs, for every logged step, the behaviour policy
that produced it. The original datasets are not public, so (spec ``ppl.md``, our choice) each
behaviour policy is a Gaussian with a known, state-dependent mean

    mu_b(s) = clip((1 - w) * expert(s) + w * d_j(s), -1, 1),   a ~ N(mu_b(s), sigma_b^2 I),

where ``expert`` is the task's scripted MetaWorld policy and ``d_j`` a fixed random tanh-MLP
("distractor") seeded by ``j``. log pi_b(a|s) and KL(pi_b(.|s) || pi_theta(.|s)) are then exact at
every state. The raw sampled action is logged (its density is exact); the env clips it to [-1, 1].

Calibration (our choice; the success-vs-w curve is a cliff and not always monotone): measure
success on a coarse grid of w, keep the part of the curve before it first collapses (a later
recovery is ignored), smooth it with a binomial maximum-likelihood logistic dose-response fit
success(w) = sigmoid(a - b w) over all measured episodes, read off the w where the fit crosses the
target, then refine by measuring at that w and refitting (every episode measured so far informs
the fit, so one unlucky grid point cannot pin the answer). The chosen w is finally re-measured on
fresh episodes and that measured rate is what gets recorded with the dataset.
"""
from __future__ import annotations

import multiprocessing as mp
import os
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import numpy as np

from benchmarks.metaworld.envs import ACT_DIM, HORIZON, OBS_DIM, check_task, expert_policy, make_env, reset_episode


# ----------------------------------------------------------------------------------------------
# Policies
# ----------------------------------------------------------------------------------------------
class Distractor:
    """A fixed random tanh-MLP ``obs (39,) -> action (4,)`` in [-1, 1], seeded by ``seed``."""

    def __init__(self, seed: int, hidden: int = 64, obs_dim: int = OBS_DIM, act_dim: int = ACT_DIM):
        rng = np.random.default_rng([int(seed), 104729])
        self.w1 = rng.normal(0.0, 1.0 / np.sqrt(obs_dim), (obs_dim, hidden)) * 3.0
        self.b1 = rng.normal(0.0, 0.5, hidden)
        self.w2 = rng.normal(0.0, 1.0 / np.sqrt(hidden), (hidden, act_dim)) * 2.0
        self.b2 = rng.normal(0.0, 0.5, act_dim)

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        return np.tanh(np.tanh(obs @ self.w1 + self.b1) @ self.w2 + self.b2)


@dataclass(frozen=True)
class BehaviourSpec:
    """Everything that defines one behaviour policy (picklable; rebuilt in each worker)."""

    task: str  # MetaWorld task name
    w: float  # distractor weight in the blended mean (0 = expert)
    sigma: float = 0.3  # fixed action std sigma_b
    distractor_seed: int = 0  # seed j of the distractor MLP d_j
    policy_id: int = 0  # integer label stored with every step


class BehaviourPolicy:
    """Gaussian policy N(mu_b(s), sigma_b^2 I) with mu_b the clipped expert/distractor blend."""

    def __init__(self, spec: BehaviourSpec):
        check_task(spec.task)
        if not 0.0 <= spec.w <= 1.0:
            raise ValueError(f"BehaviourSpec.w must be in [0, 1], got {spec.w}")
        if spec.sigma <= 0:
            raise ValueError(f"BehaviourSpec.sigma must be > 0, got {spec.sigma}")
        self.spec = spec
        self.expert = expert_policy(spec.task)
        self.distractor = Distractor(spec.distractor_seed)

    def mean(self, obs: np.ndarray) -> np.ndarray:
        """mu_b(s), shape (4,)."""
        w = self.spec.w
        e = np.asarray(self.expert.get_action(obs), dtype=np.float64)
        mu = (1.0 - w) * e + (w * self.distractor(obs) if w > 0 else 0.0)
        return np.minimum(np.maximum(mu, -1.0), 1.0)  # = np.clip, several times faster on 4 numbers

    def sample(self, obs: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """(action, mean): action ~ N(mean, sigma^2 I), both shape (4,)."""
        mu = self.mean(obs)
        return mu + self.spec.sigma * rng.standard_normal(mu.shape), mu

    def log_prob(self, obs: np.ndarray, action: np.ndarray) -> float:
        """Exact log pi_b(action | obs)."""
        return float(gaussian_log_prob_np(action, self.mean(obs), self.spec.sigma))


def gaussian_log_prob_np(a: np.ndarray, mu: np.ndarray, sigma: float | np.ndarray) -> np.ndarray:
    """log N(a; mu, diag(sigma^2)) summed over the last axis; ``a``, ``mu``: (..., D)."""
    sigma = np.broadcast_to(np.asarray(sigma, dtype=np.float64), np.shape(mu))
    z = (a - mu) / sigma
    return np.sum(-0.5 * z * z - np.log(sigma) - 0.5 * np.log(2 * np.pi), axis=-1)


# ----------------------------------------------------------------------------------------------
# Rollouts (one episode; run in worker processes)
# ----------------------------------------------------------------------------------------------
_ENVS: dict[str, Any] = {}
_POLICIES: dict[BehaviourSpec, BehaviourPolicy] = {}


def _env(task: str):
    if task not in _ENVS:
        _ENVS[task] = make_env(task, seed=0)
    return _ENVS[task]


def _policy(spec: BehaviourSpec) -> BehaviourPolicy:
    if spec not in _POLICIES:
        _POLICIES[spec] = BehaviourPolicy(spec)
    return _POLICIES[spec]


def rollout(spec: BehaviourSpec, episode_seed: int, record: bool = True, stop_on_success: bool = False,
            horizon: int = HORIZON) -> dict[str, np.ndarray]:
    """Run one episode of the behaviour policy ``spec`` from the state fixed by ``episode_seed``.

    Returns ``success`` (any-step) and ``length``; with ``record`` also the per-step arrays
    observations (T, 39), actions (T, 4) (raw samples), rewards (T,), terminals (T,), timeouts (T,),
    step_success (T,), mu (T, 4), sigma (T,), policy_id (T,).
    """
    env = _env(spec.task)
    pol = _policy(spec)
    rng = np.random.default_rng([int(episode_seed), int(spec.policy_id), 15485863])
    obs, _ = reset_episode(env, episode_seed)
    buf: dict[str, list] = {k: [] for k in ("observations", "actions", "rewards", "terminals", "timeouts",
                                            "step_success", "mu")}
    success = False
    t = 0
    for t in range(1, horizon + 1):
        action, mu = pol.sample(obs, rng)
        nxt, reward, term, trunc, info = env.step(np.minimum(np.maximum(action, -1.0), 1.0).astype(np.float32))
        s = bool(info.get("success", 0.0) > 0)
        success = success or s
        if record:
            buf["observations"].append(obs)
            buf["actions"].append(action)
            buf["rewards"].append(float(reward))
            buf["terminals"].append(bool(term))
            buf["timeouts"].append(bool(trunc) or (t == horizon and not term))
            buf["step_success"].append(s)
            buf["mu"].append(mu)
        obs = np.asarray(nxt, dtype=np.float64)
        if term or trunc or (stop_on_success and success):
            break
    out: dict[str, Any] = {"success": success, "length": t}
    if record:
        out.update({k: np.asarray(v) for k, v in buf.items()})
        out["sigma"] = np.full(t, spec.sigma)
        out["policy_id"] = np.full(t, spec.policy_id, dtype=np.int32)
    return out


def _rollout_job(args):
    spec, seed, record, stop = args
    return rollout(spec, seed, record=record, stop_on_success=stop)


def run_episodes(spec_seeds: Sequence[tuple[BehaviourSpec, int]], workers: int = 2, record: bool = True,
                 stop_on_success: bool = False, pool=None) -> list[dict[str, np.ndarray]]:
    """Roll out many (spec, episode_seed) pairs, in order, over ``workers`` processes.

    Results do not depend on ``workers`` (each episode is determined by its spec and seed).
    """
    jobs = [(s, int(e), record, stop_on_success) for s, e in spec_seeds]
    if pool is not None:
        return pool.map(_rollout_job, jobs, chunksize=max(1, len(jobs) // (4 * workers)))
    if workers <= 1:
        return [_rollout_job(j) for j in jobs]
    with make_pool(workers) as p:
        return p.map(_rollout_job, jobs, chunksize=max(1, len(jobs) // (4 * workers)))


def make_pool(workers: int):
    """A process pool for rollouts (fork: workers start in milliseconds and need no torch)."""
    ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
    return ctx.Pool(workers, initializer=_quiet_worker)


def _quiet_worker():
    import warnings

    warnings.simplefilter("ignore")
    os.environ.setdefault("OMP_NUM_THREADS", "1")


# ----------------------------------------------------------------------------------------------
# Calibration
# ----------------------------------------------------------------------------------------------
def isotonic_decreasing(x: np.ndarray, y: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Weighted least-squares non-increasing fit of y on sorted x (pool-adjacent-violators)."""
    order = np.argsort(x, kind="stable")
    blocks: list[list[float]] = []  # [mean, weight, count]
    for yi, wi in zip(np.asarray(y, float)[order], np.asarray(weights, float)[order]):
        blocks.append([yi, wi, 1])
        while len(blocks) > 1 and blocks[-2][0] < blocks[-1][0]:
            m2, w2, c2 = blocks.pop()
            m1, w1, c1 = blocks.pop()
            blocks.append([(m1 * w1 + m2 * w2) / (w1 + w2), w1 + w2, c1 + c2])
    fit_sorted = np.concatenate([np.full(int(c), m) for m, _, c in blocks])
    fit = np.empty_like(fit_sorted)
    fit[order] = fit_sorted
    return fit


def crossing(ws: np.ndarray, fitted: np.ndarray, target: float) -> float:
    """Smallest w where the non-increasing piecewise-linear curve (ws sorted) reaches ``target``."""
    ws = np.asarray(ws, float)
    fitted = np.asarray(fitted, float)
    if fitted[0] <= target:
        return float(ws[0])
    for i in range(1, len(ws)):
        if fitted[i] <= target:
            f0, f1 = fitted[i - 1], fitted[i]
            frac = 0.0 if f0 == f1 else (f0 - target) / (f0 - f1)
            return float(ws[i - 1] + frac * (ws[i] - ws[i - 1]))
    return float(ws[-1])


def logistic_fit(ws: np.ndarray, successes: np.ndarray, episodes: np.ndarray, ridge: float = 1e-3) -> tuple[float, float]:
    """Binomial maximum-likelihood fit of success(w) = sigmoid(a - b * w) (a dose-response curve).

    ws, successes, episodes: (K,) measured points. A tiny ridge keeps the fit finite when the
    points are perfectly separated (a cliff). Returns (a, b); b > 0 means success falls with w.
    """
    from scipy.optimize import minimize

    ws, k, n = (np.asarray(v, float) for v in (ws, successes, episodes))

    def nll(p):
        z = p[0] - p[1] * ws
        # -log sigmoid(z) = logaddexp(0, -z); -log(1 - sigmoid(z)) = logaddexp(0, z)
        return float(np.sum(k * np.logaddexp(0, -z) + (n - k) * np.logaddexp(0, z)) + ridge * (p @ p))

    res = minimize(nll, x0=np.array([0.0, 1.0]), method="Nelder-Mead",
                   options={"xatol": 1e-6, "fatol": 1e-9, "maxiter": 4000})
    return float(res.x[0]), float(res.x[1])


def logistic_crossing(a: float, b: float, target: float, lo: float = 0.0, hi: float = 1.0) -> float:
    """w with sigmoid(a - b w) = target, clipped to [lo, hi]."""
    if b <= 0:
        return lo if target >= 1 / (1 + np.exp(-a)) else hi
    return float(np.clip((a - np.log(target / (1 - target))) / b, lo, hi))


@dataclass
class CalibrationResult:
    task: str
    target: float  # requested success rate
    w: float  # chosen distractor weight
    measured_success: float  # success rate of the chosen w on fresh episodes
    measured_episodes: int
    distractor_seed: int = 0  # distractor MLP seed j of this policy
    points: list = field(default_factory=list)  # all (w, successes, episodes) measured


def smoothed_curve(points: dict[float, list[int]], floor: float) -> tuple[np.ndarray, np.ndarray]:
    """Isotonic fit on the part of the measured curve before it first drops to ``floor`` or below.

    ``points`` maps w -> [successes, episodes]. Returns (sorted ws, fitted success rates).
    """
    ws = np.array(sorted(points))
    rates = np.array([points[w][0] / points[w][1] for w in ws])
    counts = np.array([points[w][1] for w in ws], float)
    cut = len(ws)
    for i, r in enumerate(rates):
        if r <= floor:
            cut = i + 1
            break
    ws, rates, counts = ws[:cut], rates[:cut], counts[:cut]
    return ws, isotonic_decreasing(ws, rates, counts)


def calibrate(task: str, targets: Sequence[float], sigma: float = 0.3,
              distractor_seeds: Sequence[int] | None = None,
              grid: Sequence[float] = (0.0, 0.15, 0.3, 0.45, 0.6, 0.75), grid_episodes: int = 6,
              refine_rounds: int = 3, refine_episodes: int = 8, final_episodes: int = 16, seed: int = 0,
              workers: int = 2, pool=None, log=print) -> list[CalibrationResult]:
    """Find, per target success rate, the distractor weight w of ``task``'s behaviour policy.

    Target ``i`` uses distractor ``distractor_seeds[i]`` (default: seed i), so policies calibrated to
    different targets differ in direction, not only in w (near the cliff, w alone barely separates
    them). Episode seeds of calibration are disjoint from collection seeds (>= 10**6).
    """
    check_task(task)
    dseeds = list(range(len(targets))) if distractor_seeds is None else list(distractor_seeds)
    if len(dseeds) != len(targets):
        raise ValueError(f"calibrate: {len(targets)} targets but {len(dseeds)} distractor_seeds")
    next_seed = [10**6 + 10**4 * int(seed)]

    def measure(w: float, j: int, n: int) -> tuple[int, int]:
        spec = BehaviourSpec(task, float(w), sigma, j)
        seeds = range(next_seed[0], next_seed[0] + n)
        next_seed[0] += n
        eps = run_episodes([(spec, s) for s in seeds], workers=workers, record=False, stop_on_success=True,
                           pool=pool)
        return sum(int(e["success"]) for e in eps), n

    results = []
    for target, j in zip(targets, dseeds):
        points: dict[float, list[int]] = {}

        def add(w: float, n: int):
            k, n = measure(w, j, n)
            old = points.setdefault(round(float(w), 4), [0, 0])
            old[0] += k
            old[1] += n

        for w in grid:
            add(w, grid_episodes)
        log(f"[calibrate {task} d{j}] grid: " + ", ".join(f"w={w:.2f}:{k}/{n}" for w, (k, n) in sorted(points.items())))
        floor = target / 2

        def estimate() -> float:
            ws, _ = smoothed_curve(points, floor)  # the part of the curve before it first collapses
            k = np.array([points[w][0] for w in ws])
            n = np.array([points[w][1] for w in ws])
            a, b = logistic_fit(ws, k, n)
            return logistic_crossing(a, b, target, float(ws[0]), float(ws[-1]))

        for _ in range(refine_rounds):
            add(estimate(), refine_episodes)
        w = round(estimate(), 4)
        k, n = measure(w, j, final_episodes)
        log(f"[calibrate {task} d{j}] target {target:.2f}: w={w:.4f} measured {k}/{n} = {k / n:.2f}")
        results.append(CalibrationResult(task=task, target=float(target), w=float(w), measured_success=k / n,
                                         measured_episodes=n, distractor_seed=int(j),
                                         points=[[w_, c[0], c[1]] for w_, c in sorted(points.items())]))
    return sorted(results, key=lambda r: r.target)


def calibration_to_dict(results: Sequence[CalibrationResult]) -> list[dict]:
    return [asdict(r) for r in results]
