"""Calibration of a behaviour policy's success rate: the bisection procedure on synthetic success
curves (stub rollouts with a known population rate), and a short real run on one task."""
import numpy as np
import pytest
from scipy.stats import norm

from benchmarks.metaworld.policies import BehaviourSpec, bisect_weight, calibrate, make_pool, run_episodes


def threshold_stub(center, width, flip=0.0, recover_above=None, recover_rate=0.0, random_fail=0.0):
    """Synthetic episodes: episode ``seed`` succeeds iff w < its threshold ~ N(center, width), with a
    per-(seed, w) flip probability ``flip`` (non-monotone noise), a per-(seed, w) failure probability
    ``random_fail`` (sweep-into-like random failures at any w) and, above ``recover_above``, a
    seed-independent recovery to ``recover_rate`` (button-press-like curve). Returns (outcomes,
    true population rate(w), rollout counter)."""
    count = [0]

    def thr(seed):
        return center + width * np.random.default_rng([seed, 1]).standard_normal()

    def outcomes(w, seeds):
        count[0] += len(seeds)
        outcomes.ws.append(w)
        out = []
        for s in seeds:
            rng = np.random.default_rng([s, int(round(w * 1e6)), 2])
            ok = w < thr(s)
            if recover_above is not None and w > recover_above:
                ok = rng.random() < recover_rate
            if rng.random() < flip:
                ok = not ok
            if rng.random() < random_fail:
                ok = False
            out.append(bool(ok))
        return out

    outcomes.ws = []  # every w rolled out

    def true_rate(w):
        p = norm.sf(w, loc=center, scale=width)
        return (p * (1 - flip) + (1 - p) * flip) * (1 - random_fail)

    return outcomes, true_rate, count


@pytest.mark.parametrize("target,tol", [(0.2, 0.1), (0.5, 0.15)])
@pytest.mark.parametrize("center,width,flip,random_fail",
                         [(0.61, 0.01, 0.0, 0.0), (0.35, 0.06, 0.03, 0.0), (0.08, 0.02, 0.0, 0.0),
                          (0.4, 0.05, 0.0, 0.2)])
def test_bisection_hits_the_population_rate_of_a_steep_curve(target, tol, center, width, flip, random_fail):
    # door-open-like cliff (width 0.01), a slope with non-monotone noise, an early cliff, and
    # sweep-into-like random failures (where inferring outcomes inside a bracket is biased)
    hits = []
    for rep in range(8):
        outcomes, true_rate, count = threshold_stub(center, width, flip, random_fail=random_fail)
        seeds = list(range(1000 * rep, 1000 * rep + 64))
        res = bisect_weight(outcomes, target, seeds, grid=[0.0, 0.15, 0.3, 0.45, 0.6, 0.75], grid_episodes=8,
                            w_tol=0.0005, tolerance=tol)
        assert res.reached and res.warning == ""
        assert abs(res.rate - target) <= tol  # the pool's real (rolled-out) rate at w
        if flip == random_fail == 0:  # clean thresholds: the search stops within tolerance/2 on the pool
            assert abs(res.rate - target) <= tol / 2 + 1e-9
        lo, r_lo, hi, r_hi = res.bracket
        assert lo < hi and r_lo > target >= r_hi
        hits.append(abs(true_rate(res.w) - target) <= tol)
        assert res.evaluated == count[0] <= 10 * 64  # bounded cost (the bookkeeping counts every rollout)
    # the population rate at the chosen w is within tolerance for >= 7 of 8 pools (a pool of 64
    # episodes is itself a sample: SD of its rate ~0.05-0.06)
    assert sum(hits) >= 7, hits


def test_bisection_ignores_a_recovery_after_the_collapse():
    outcomes, true_rate, _ = threshold_stub(0.4, 0.02, recover_above=0.6, recover_rate=0.3)
    res = bisect_weight(outcomes, 0.2, list(range(64)), grid=[0.0, 0.2, 0.5, 0.7, 0.9], grid_episodes=8,
                        w_tol=0.0005, tolerance=0.1)
    assert res.reached and 0.38 < res.w < 0.46  # on the first cliff, not in the recovery (rate 0.3 there)
    assert abs(res.rate - 0.2) <= 0.05 + 1e-9
    assert max(outcomes.ws) < 0.7  # the recovering part of the curve is never rolled out


def test_a_jump_over_the_target_is_reported_not_hidden():
    # every episode has the same threshold: success jumps from 100% to 0% at w = 0.5
    def jump(w, seeds):
        return [w < 0.5] * len(seeds)

    res = bisect_weight(jump, 0.2, list(range(32)), grid=[0.0, 0.3, 0.6], grid_episodes=4, w_tol=0.001,
                        tolerance=0.1)
    assert not res.reached and "unreachable" in res.warning
    lo, r_lo, hi, r_hi = res.bracket
    assert r_lo == 1.0 and r_hi == 0.0 and hi - lo <= 0.01 and lo < 0.5 <= hi
    # a target above the best success rate on the grid, and one below the worst
    low = bisect_weight(lambda w, s: [i % 4 == 0 for i in s], 0.5, list(range(32)), [0.0, 0.5], 4, 0.001, 0.15)
    assert not low.reached and low.w == 0.0 and "smallest weight" in low.warning
    high = bisect_weight(lambda w, s: [True] * len(s), 0.5, list(range(32)), [0.0, 0.5], 4, 0.001, 0.15)
    assert not high.reached and high.w == 0.5 and "largest weight" in high.warning


def test_calibrate_records_warnings_and_fresh_measurement_with_a_stub():
    outcomes, _, _ = threshold_stub(0.6, 0.01)
    logs = []
    res = calibrate("door-open", [0.2, 0.5], distractor_seeds=[1, 0], tolerances=[0.1, 0.15], episodes=32,
                    final_episodes=40, log=logs.append, outcomes=lambda spec, seeds: outcomes(spec.w, seeds))
    assert [r.target for r in res] == [0.2, 0.5] and [r.distractor_seed for r in res] == [1, 0]
    for r in res:
        assert r.measured_episodes == 40 and r.pool_episodes == 32 and r.reached
        assert r.within_tolerance == (abs(r.measured_success - r.target) <= r.tolerance)
        assert bool(r.warnings) != r.within_tolerance
    # an unreachable target is logged as a WARNING and recorded
    logs.clear()
    (bad,) = calibrate("door-open", [0.2], tolerances=[0.1], episodes=16, final_episodes=8, log=logs.append,
                       outcomes=lambda spec, seeds: [spec.w < 0.5] * len(seeds))
    assert not bad.reached and not bad.within_tolerance and len(bad.warnings) == 2
    assert any(m.startswith("WARNING") and "unreachable" in m for m in logs)
    with pytest.raises(ValueError, match="tolerances"):
        calibrate("door-open", [0.2, 0.5], tolerances=[0.1], outcomes=lambda spec, seeds: [True] * len(seeds))


@pytest.mark.slow
def test_calibration_lands_within_tolerance_of_target():
    # door-open, 20% target: the curve falls from 100% to ~0% within w ~ 0.57..0.63 (the hardest cliff)
    with make_pool(2) as pool:
        (res,) = calibrate("door-open", [0.2], sigma=0.3, distractor_seeds=[1], tolerances=[0.1],
                           grid=(0.0, 0.3, 0.6, 0.75), grid_episodes=8, episodes=32, final_episodes=32, seed=0,
                           pool=pool, log=lambda *_: None)
        assert res.reached and 0.55 < res.w < 0.65
        assert abs(res.pool_success - 0.2) <= 2 / 32 + 1e-9
        # the recorded fresh rate is within tolerance (binomial SD at 32 episodes ~0.07)
        assert abs(res.measured_success - 0.2) <= 0.15, res
        # reproducible: the same w on other fresh episodes gives a rate near the target
        eps = run_episodes([(BehaviourSpec("door-open", res.w, 0.3, 1), 5 * 10**6 + i) for i in range(32)],
                           record=False, stop_on_success=True, pool=pool)
    rate = sum(e["success"] for e in eps) / 32
    assert abs(rate - 0.2) <= 0.2, (res, rate)
