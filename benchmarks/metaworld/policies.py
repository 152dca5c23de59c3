"""Behaviour policies with exact labels, episode rollouts, and success-rate calibration.

PPL (Cho et al., ICML 2025, arXiv 2505.06273) needs, for every logged step, the behaviour policy
that produced it. The original datasets are not public, so (spec ``ppl.md``, our choice) each
behaviour policy is a Gaussian with a known, state-dependent mean

    mu_b(s) = clip((1 - w) * expert(s) + w * d_j(s), -1, 1),   a ~ N(mu_b(s), sigma_b^2 I),

where ``expert`` is the task's scripted MetaWorld policy and ``d_j`` a fixed random tanh-MLP
("distractor") seeded by ``j``. log pi_b(a|s) and KL(pi_b(.|s) || pi_theta(.|s)) are then exact at
every state. The raw sampled action is logged (its density is exact); the env clips it to [-1, 1].

Calibration (our choice; the success-vs-w curve is a steep cliff, e.g. door-open 100% at w = 0.57
and 17% at w = 0.61, and past the cliff not always monotone): a coarse scan brackets the first
crossing of the target, then regula falsi on w over a fixed pool of common-random-number episodes
finds the crossing (see :func:`bisect_weight`). The chosen w is finally re-measured
on fresh episodes and that measured rate is what gets recorded with the dataset; a target that is
out of reach (the curve jumps over it) is logged as a WARNING and recorded in the calibration JSON.
"""
from __future__ import annotations

import multiprocessing as mp
import os
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from benchmarks.metaworld.envs import (ACT_DIM, HORIZON, OBS_DIM, check_task, expert_policy, make_env, reset_episode,
                                       stratified_seeds)


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
        # = tanh(tanh(obs @ w1 + b1) @ w2 + b2), computed in place (called once per env step)
        h = np.dot(obs, self.w1)
        np.tanh(np.add(h, self.b1, out=h), out=h)
        y = np.dot(h, self.w2)
        return np.tanh(np.add(y, self.b2, out=y), out=y)


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
        """mu_b(s), shape (4,). ``obs`` is not modified."""
        w = self.spec.w
        # a copy: some scripted experts write into their argument (SawyerDoorOpenV3Policy shifts
        # obs[4], the door's x, by -0.05 in place), which would corrupt the logged observation and
        # the distractor's input; the expert's output is the same either way
        mu = np.multiply(self.expert.get_action(obs.copy()), 1.0 - w, dtype=np.float64)
        if w > 0:
            d = self.distractor(obs)
            mu += np.multiply(d, w, out=d)
        # = np.clip(mu, -1, 1), several times faster on 4 numbers; in place
        return np.minimum(np.maximum(mu, -1.0, out=mu), 1.0, out=mu)

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
    mean, step = _policy(spec).mean, env.step
    rng = np.random.default_rng([int(episode_seed), int(spec.policy_id), 15485863])
    # all of the episode's Gaussian draws at once: the same numbers as one standard_normal(4) per step
    noise = spec.sigma * rng.standard_normal((horizon, ACT_DIM))
    obs, _ = reset_episode(env, episode_seed)
    obs_l, act_l, mu_l, rew_l, term_l, trunc_l, succ_l = [], [], [], [], [], [], []
    success = False
    t = 0
    for t in range(1, horizon + 1):
        mu = mean(obs)
        action = mu + noise[t - 1]  # a ~ N(mu, sigma^2 I), logged unclipped
        nxt, reward, term, trunc, info = step(np.minimum(np.maximum(action, -1.0), 1.0).astype(np.float32))
        s = info.get("success", 0.0) > 0
        success = success or s
        if record:
            obs_l.append(obs)
            act_l.append(action)
            mu_l.append(mu)
            rew_l.append(reward)
            term_l.append(term)
            trunc_l.append(trunc)
            succ_l.append(s)
        obs = np.asarray(nxt, dtype=np.float64)
        if term or trunc or (stop_on_success and success):
            break
    out: dict[str, Any] = {"success": bool(success), "length": t}
    if record:
        terminals = np.asarray(term_l, dtype=bool)
        timeouts = np.asarray(trunc_l, dtype=bool)
        timeouts[-1] |= t == horizon and not terminals[-1]
        out.update({"observations": np.asarray(obs_l), "actions": np.asarray(act_l),
                    "rewards": np.asarray(rew_l, dtype=np.float64), "terminals": terminals, "timeouts": timeouts,
                    "step_success": np.asarray(succ_l, dtype=bool), "mu": np.asarray(mu_l)})
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
Outcomes = Callable[[float, Sequence[int]], Sequence[bool]]  # (w, episode seeds) -> any-step success per seed


@dataclass
class BisectResult:
    """Outcome of :func:`bisect_weight` for one target success rate."""

    w: float  # chosen distractor weight
    rate: float  # success rate of the common-random-number episode pool at w
    reached: bool  # |rate - target| <= tolerance (False: the curve jumps over the target, or never crosses it)
    bracket: tuple  # (w_lo, rate_lo, w_hi, rate_hi) of the final bracket (None where it does not exist)
    evaluated: int  # episodes actually rolled out
    warning: str = ""  # why the target was not reached ("" when it was)
    points: list = field(default_factory=list)  # [w, successes, pool episodes]: whole-pool measurements


def bisect_weight(outcomes: Outcomes, target: float, seeds: Sequence[int], grid: Sequence[float],
                  grid_episodes: int, w_tol: float, tolerance: float, coarse_width: float = 0.02,
                  max_steps: int = 4) -> BisectResult:
    """Distractor weight w whose success rate on a fixed pool of episodes crosses ``target``.

    The success-vs-w curve is a steep cliff (door-open: 100% at w = 0.57, 17% at 0.61) and, past the
    cliff, not always monotone. It is measured with *common random numbers*: the same episode seeds
    (start states and noise draws) at every w, so differences between nearby w are not swamped by
    episode-to-episode noise. The procedure:

    1. Coarse: scan ``grid`` upwards on the first ``grid_episodes`` seeds, stopping at the first
       point with rate <= target (the later part of the curve, including any recovery after the
       collapse, is never looked at); bisect that bracket on the same seeds down to ``coarse_width``.
       Here, to save rollouts, an episode with the same outcome at both ends of a bracket is taken
       to keep it at the midpoint (episodes mostly succeed up to their own threshold weight and fail
       above it); only the episodes that differ are rolled out.
    2. Whole pool ``seeds`` at the bracket ends, all rolled out; if the small coarse sample (or the
       inference, which is biased where episodes fail at random at any w, as in sweep-into) put the
       crossing outside the bracket, step outwards (doubling) until rate(lo) > target >= rate(hi).
    3. Regula falsi (Illinois variant) on the whole pool's real rates: at most ``max_steps``
       interpolated points, stopping once a rate is within tolerance/2 of the target or the bracket
       is narrower than ``w_tol``.
    4. Keep the measured point with the rate nearest the target. If that is further than
       ``tolerance`` away, the curve jumps over the target (or never crosses it inside the grid):
       ``reached`` is False and ``warning`` says so.
    Failing episodes run the full horizon and dominate the cost, hence the small coarse sample.
    """
    seeds = [int(s) for s in seeds]
    n = len(seeds)
    if not 0.0 < target < 1.0:
        raise ValueError(f"calibration target must be in (0, 1), got {target}")
    if not 1 <= grid_episodes <= n:
        raise ValueError(f"grid_episodes must be in [1, {n}] (the pool size), got {grid_episodes}")
    if len(grid) == 0 or w_tol <= 0:
        raise ValueError("calibration needs a non-empty grid and w_tol > 0")
    grid = sorted({round(float(w), 6) for w in grid})
    w_min, w_max = grid[0], grid[-1]
    known: dict[float, np.ndarray] = {}  # w -> rolled-out outcome per pool seed: 1, 0, or -1 (not rolled out)
    evaluated = [0]

    def run(w: float, idx) -> np.ndarray:
        """Outcomes at w, rolling out the seeds ``idx`` not rolled out yet."""
        o = known.setdefault(w, np.full(n, -1, np.int8))
        todo = [int(i) for i in idx if o[i] < 0]
        if todo:
            res = outcomes(w, [seeds[i] for i in todo])
            if len(res) != len(todo):
                raise RuntimeError(f"outcomes returned {len(res)} results for {len(todo)} seeds")
            o[todo] = np.asarray(res, dtype=bool)
            evaluated[0] += len(todo)
        return o

    def rate(w: float) -> float:
        return float(run(w, range(n)).mean())

    # 1. coarse scan + bisection on the first grid_episodes seeds
    sub = np.arange(grid_episodes)
    lo = hi = None
    for w in grid:
        if run(w, sub)[sub].mean() <= target:
            hi = w
            break
        lo = w
    if lo is None and rate(hi) > target:  # the coarse sample was unlucky at the smallest weight
        lo, hi = hi, (grid[1] if len(grid) > 1 else None)
    if lo is not None and hi is not None:
        vals = {lo: run(lo, sub)[sub], hi: run(hi, sub)[sub]}
        while hi - lo > coarse_width:
            mid = round((lo + hi) / 2, 6)
            o_lo, o_hi = vals[lo], vals[hi]
            o = run(mid, sub[o_lo != o_hi])[sub]
            vals[mid] = o = np.where(o_lo == o_hi, o_lo, o)  # inferred where both ends agree
            lo, hi = (mid, hi) if o.mean() > target else (lo, mid)
    # 2. whole pool at the bracket ends; step outwards until the bracket holds the pool's crossing
    step = max(coarse_width, (hi - lo) if lo is not None and hi is not None else 0.0)
    unreachable = ""
    while lo is not None and rate(lo) <= target:
        if lo <= w_min:
            hi, lo = lo, None
            break
        hi, lo, step = lo, max(w_min, round(lo - step, 6)), 2 * step
    if lo is None:
        unreachable = f"success is already {rate(w_min):.2f} at the smallest weight w={w_min:g}"
    else:
        if hi is None:
            hi = w_max if lo < w_max else None
        while hi is not None and rate(hi) > target:
            if hi >= w_max:
                lo, hi = hi, None
                break
            lo, hi, step = hi, min(w_max, round(hi + step, 6)), 2 * step
        if hi is None:
            unreachable = f"success is still {rate(lo):.2f} at the largest weight w={lo:g} of the grid"
    if unreachable:
        w = w_min if lo is None else lo
        warning = f"target {target:.2f} unreachable: {unreachable}"
        bracket = (None, None, w, rate(w)) if lo is None else (w, rate(w), None, None)
    else:
        # 3. Illinois regula falsi on the whole pool's real rates
        tried = {lo: rate(lo), hi: rate(hi)}
        g_lo, g_hi = tried[lo] - target, tried[hi] - target  # > 0, <= 0
        side = 0
        for _ in range(max_steps):
            if hi - lo <= w_tol or min(abs(r - target) for r in tried.values()) <= tolerance / 2:
                break
            x = lo + (hi - lo) * g_lo / (g_lo - g_hi)
            x = round(min(max(x, lo + 0.05 * (hi - lo)), hi - 0.05 * (hi - lo)), 6)
            if x in (lo, hi):
                break
            r = tried[x] = rate(x)
            if r > target:
                lo, g_lo = x, r - target
                g_hi = g_hi / 2 if side == 1 else g_hi  # Illinois: halve the end kept twice in a row
                side = 1
            else:
                hi, g_hi = x, r - target
                g_lo = g_lo / 2 if side == -1 else g_lo
                side = -1
        # 4. choose
        w = min(tried, key=lambda x: (abs(tried[x] - target), x))
        bracket = (lo, rate(lo), hi, rate(hi))
        warning = ""
        if abs(tried[w] - target) > tolerance:
            warning = (f"target {target:.2f} unreachable within +-{tolerance:.2f}: success jumps from {rate(lo):.2f} "
                       f"at w={lo:.6f} to {rate(hi):.2f} at w={hi:.6f} ({n} episodes); chose w={w:.6f} "
                       f"({tried[w]:.2f})")
    pts = [[w_, int((o == 1).sum()), n] for w_, o in sorted(known.items()) if (o >= 0).all()]
    return BisectResult(w=w, rate=rate(w), reached=not warning, bracket=bracket, evaluated=evaluated[0],
                        warning=warning, points=pts)


@dataclass
class CalibrationResult:
    task: str
    target: float  # requested success rate
    w: float  # chosen distractor weight
    measured_success: float  # success rate of the chosen w on fresh episodes (recorded with the dataset)
    measured_episodes: int
    distractor_seed: int = 0  # distractor MLP seed j of this policy
    tolerance: float = 0.1  # allowed |success - target|
    pool_success: float = 0.0  # success rate of the chosen w on the calibration pool (selected: ~target)
    pool_episodes: int = 0  # size of the common-random-number pool
    reached: bool = True  # False: the target is out of reach for this distractor (see warnings)
    within_tolerance: bool = True  # |measured_success - target| <= tolerance
    warnings: list = field(default_factory=list)  # human-readable problems (unreachable / off-target)
    bracket: list = field(default_factory=list)  # [w_lo, rate_lo, w_hi, rate_hi] of the final bracket
    episodes_rolled_out: int = 0  # calibration cost in episodes (pool + fresh)
    seconds: float = 0.0  # wall-clock time of this target's calibration
    points: list = field(default_factory=list)  # [w, successes, pool episodes]: whole-pool measurements


def calibrate(task: str, targets: Sequence[float], sigma: float = 0.3,
              distractor_seeds: Sequence[int] | None = None, tolerances: Sequence[float] | None = None,
              grid: Sequence[float] = (0.0, 0.15, 0.3, 0.45, 0.6, 0.75), grid_episodes: int = 8,
              episodes: int = 50, w_tol: float = 0.0005, max_steps: int = 4, final_episodes: int = 50, seed: int = 0,
              workers: int = 2, pool=None, log=print,
              outcomes: Callable[[BehaviourSpec, Sequence[int]], Sequence[bool]] | None = None,
              ) -> list[CalibrationResult]:
    """Find, per target success rate, the distractor weight w of ``task``'s behaviour policy.

    Target ``i`` uses distractor ``distractor_seeds[i]`` (default: seed i), so policies calibrated to
    different targets differ in direction, not only in w. Each target is searched on a pool of
    ``episodes`` common-random-number episodes (:func:`bisect_weight`); the chosen w is then
    measured on ``final_episodes`` fresh episodes, and that rate is what is recorded with the
    dataset. A target that cannot be reached (curve jumps over it), or whose fresh measurement is
    more than ``tolerances[i]`` off, is logged as a WARNING and recorded (``reached``, ``warnings``).
    Episode seeds (disjoint from collection's): the pool and the fresh episodes each cover the task's
    50 goal/object layouts in turn (:func:`stratified_seeds`, from 10**6 + 10**4*seed and +5000),
    which removes the layout-sampling part of their noise.
    ``outcomes(spec, seeds)`` replaces the rollouts (tests); default: any-step success of real episodes.
    """
    import time

    check_task(task)
    dseeds = list(range(len(targets))) if distractor_seeds is None else list(distractor_seeds)
    tols = [0.1] * len(targets) if tolerances is None else [float(t) for t in tolerances]
    if len(dseeds) != len(targets) or len(tols) != len(targets):
        raise ValueError(f"calibrate: {len(targets)} targets but {len(dseeds)} distractor_seeds and "
                         f"{len(tols)} tolerances")
    if max(episodes, final_episodes) > 1000:
        raise ValueError("calibrate: episodes and final_episodes must be <= 1000 (episode seed blocks)")
    base = 10**6 + 10**4 * int(seed)
    pool_seeds = stratified_seeds(base, episodes)
    fresh_seeds = stratified_seeds(base + 5000, final_episodes)
    assert max(pool_seeds) < base + 5000 and max(fresh_seeds) < base + 10**4

    if outcomes is None:
        def outcomes(spec: BehaviourSpec, seeds: Sequence[int]) -> list[bool]:
            eps = run_episodes([(spec, s) for s in seeds], workers=workers, record=False, stop_on_success=True,
                               pool=pool)
            return [bool(e["success"]) for e in eps]

    results = []
    for target, j, tol in zip(targets, dseeds, tols):
        t0 = time.monotonic()
        res = bisect_weight(lambda w, s: outcomes(BehaviourSpec(task, float(w), sigma, j), s), float(target),
                            pool_seeds, grid, grid_episodes, w_tol, tol, max_steps=max_steps)
        fresh = outcomes(BehaviourSpec(task, float(res.w), sigma, j), fresh_seeds)
        k = int(sum(bool(x) for x in fresh))
        rate = k / final_episodes
        warnings = [res.warning] if res.warning else []
        if abs(rate - target) > tol:
            sd = np.sqrt(target * (1 - target) / final_episodes)
            warnings.append(f"fresh measurement {k}/{final_episodes} = {rate:.2f} is more than {tol:.2f} from the "
                            f"target {target:.2f} (binomial SD of such a measurement at the target ~{sd:.2f}; pool rate "
                            f"{res.rate:.2f})")
        dt = time.monotonic() - t0
        grid_pts = ", ".join(f"w={p[0]:g}:{p[1]}/{p[2]}" for p in res.points)
        log(f"[calibrate {task} d{j}] target {target:.2f}: w={res.w:.6f} pool {res.rate:.2f} ({episodes} episodes), "
            f"fresh {k}/{final_episodes} = {rate:.2f}; {res.evaluated + final_episodes} episodes in {dt:.1f}s "
            f"[{grid_pts}]")
        for msg in warnings:
            log(f"WARNING [calibrate {task} d{j}] {msg}")
        results.append(CalibrationResult(
            task=task, target=float(target), w=float(res.w), measured_success=rate, measured_episodes=final_episodes,
            distractor_seed=int(j), tolerance=tol, pool_success=res.rate, pool_episodes=episodes,
            reached=res.reached, within_tolerance=abs(rate - target) <= tol, warnings=warnings, bracket=list(res.bracket),
            episodes_rolled_out=res.evaluated + final_episodes, seconds=round(dt, 2), points=res.points))
    return sorted(results, key=lambda r: r.target)


def calibration_to_dict(results: Sequence[CalibrationResult]) -> list[dict]:
    return [asdict(r) for r in results]
