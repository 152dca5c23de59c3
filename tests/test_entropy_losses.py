"""Entropy-mechanism losses against independent, straightforward per-token computations (value + gradient)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from methods.entropy_mechanism.losses import (
    LOSSES, clip_cov_loss, clip_cov_select, grpo_loss, kl_cov_loss, kl_cov_select, token_covariance,
)


def _batch(seed: int, B: int = 6, T: int = 9, scale: float = 1.0, per_token_adv: bool = False):
    g = torch.Generator().manual_seed(seed)
    old = -torch.rand(B, T, generator=g, dtype=torch.float64) * 3.0
    logp = (old + 0.4 * torch.randn(B, T, generator=g, dtype=torch.float64)).clamp(max=0.0)
    adv = scale * torch.randn((B, T) if per_token_adv else (B,), generator=g, dtype=torch.float64)
    lengths = torch.randint(1, T + 1, (B,), generator=g)
    mask = (torch.arange(T)[None, :] < lengths[:, None])
    return logp.requires_grad_(True), old, adv, mask


def _adv_bt(adv, B, T):
    return adv[:, None].expand(B, T) if adv.dim() == 1 else adv


def _ref_cov(logp, adv, mask):
    """numpy loop: cov_i = (A_i - mean A)(logp_i - mean logp) over valid tokens."""
    lp, A, m = logp.detach().numpy(), _adv_bt(adv, *logp.shape).numpy(), mask.numpy()
    cells = [(b, t) for b in range(lp.shape[0]) for t in range(lp.shape[1]) if m[b, t]]
    ma = np.mean([A[c] for c in cells])
    ml = np.mean([lp[c] for c in cells])
    out = np.zeros_like(lp)
    for c in cells:
        out[c] = (A[c] - ma) * (lp[c] - ml)
    return out


def _ref_ppo(logp, old, adv, mask, lo, hi):
    """Per-token loop: value of the token-mean PPO loss and its analytic gradient w.r.t. logp."""
    lp, ol, A, m = logp.detach().numpy(), old.numpy(), _adv_bt(adv, *logp.shape).numpy(), mask.numpy()
    n = m.sum()
    val, grad, clipped = 0.0, np.zeros_like(lp), np.zeros_like(lp, dtype=bool)
    for b in range(lp.shape[0]):
        for t in range(lp.shape[1]):
            if not m[b, t]:
                continue
            r = math.exp(lp[b, t] - ol[b, t])
            unclipped, clip = -A[b, t] * r, -A[b, t] * min(max(r, 1 - lo), 1 + hi)
            if clip > unclipped:
                val += clip
                clipped[b, t] = True
            else:
                val += unclipped
                grad[b, t] = -A[b, t] * r / n
    return val / n, grad, clipped


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("per_token_adv", [False, True])
def test_token_covariance_matches_loop(seed, per_token_adv):
    logp, _, adv, mask = _batch(seed, per_token_adv=per_token_adv)
    cov = token_covariance(logp, adv, mask)
    np.testing.assert_allclose(cov.numpy(), _ref_cov(logp, adv, mask), atol=1e-12)
    assert not cov.requires_grad
    assert (cov[~mask] == 0).all()


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("eps", [(0.2, 0.2), (0.2, 0.28), (1.0, 1.0)])
def test_grpo_loss_value_and_gradient(seed, eps):
    logp, old, adv, mask = _batch(seed, per_token_adv=seed % 2 == 1)
    loss, metrics = grpo_loss(logp, old, adv, mask, *eps)
    ref_val, ref_grad, clipped = _ref_ppo(logp, old, adv, mask, *eps)
    loss.backward()
    assert loss.item() == pytest.approx(ref_val, rel=1e-10, abs=1e-12)
    np.testing.assert_allclose(logp.grad.numpy(), ref_grad, atol=1e-12)
    assert metrics["clip_frac"].item() == pytest.approx(clipped.sum() / mask.sum().item())
    ref_abs = np.abs((logp.detach() - old).numpy())[mask.numpy()].mean()
    assert metrics["logratio_abs_mean"].item() == pytest.approx(ref_abs)


def test_grpo_sequence_level_matches_loop():
    logp, old, adv, mask = _batch(3)
    loss, _ = grpo_loss(logp, old, adv, mask, 0.2, 0.2, level="sequence")
    lp, ol, m = logp.detach().numpy(), old.numpy(), mask.numpy()
    vals = []
    for b in range(lp.shape[0]):
        s = math.exp(np.mean((lp[b] - ol[b])[m[b]]))
        A = adv[b].item()
        vals.append(max(-A * s, -A * min(max(s, 0.8), 1.2)))
    assert loss.item() == pytest.approx(np.mean(vals), rel=1e-10)
    loss.backward()
    assert torch.isfinite(logp.grad).all() and (logp.grad[~mask] == 0).all()


@pytest.mark.parametrize("seed", range(6))
def test_clip_cov_stops_gradient_of_selected_tokens_only(seed):
    # large advantages so that plenty of tokens have cov in (1, 5)
    logp, old, adv, mask = _batch(seed, B=8, T=16, scale=3.0)
    ratio = 0.1
    sel = clip_cov_select(logp, old, adv, mask, clip_ratio=ratio, generator=torch.Generator().manual_seed(seed))
    loss, metrics = clip_cov_loss(logp, old, adv, mask, clip_ratio=ratio, selected=sel)
    loss.backward()
    ref_val_full, ref_grad, clipped = _ref_ppo(logp, old, adv, mask, 1.0, 1.0)
    cov = _ref_cov(logp, adv, mask)
    n_valid = mask.sum().item()
    cand = mask.numpy() & ~clipped & (cov > 1.0) & (cov < 5.0)
    s = sel.numpy()
    assert cand.sum() >= 2, "test batch must have candidates"
    # selection: only candidates, exactly max(1, floor(r N)) of them (or all candidates)
    assert not (s & ~cand).any()
    assert s.sum() == min(max(1, math.floor(ratio * n_valid)), cand.sum())
    # gradient: zero on the selected tokens, unchanged (plain PPO, range [0, 2]) everywhere else
    g = logp.grad.numpy()
    assert (g[s] == 0).all()
    np.testing.assert_allclose(g[~s], ref_grad[~s], atol=1e-12)
    assert (np.abs(ref_grad[s]) > 0).all()  # the stopped tokens really had a gradient
    # value: the selected tokens' terms removed, denominator still N_valid
    lp, ol, A = logp.detach().numpy(), old.numpy(), _adv_bt(adv, *logp.shape).numpy()
    removed = sum(-A[c] * math.exp(lp[c] - ol[c]) for c in zip(*np.nonzero(s)))
    assert loss.item() == pytest.approx(ref_val_full - removed / n_valid, rel=1e-10)
    assert metrics["n_selected"].item() == s.sum()
    assert metrics["cov_mean"].item() == pytest.approx(cov[mask.numpy()].mean(), abs=1e-12)


def test_clip_cov_selection_is_seeded_and_uniform():
    logp, old, adv, mask = _batch(1, B=8, T=16, scale=3.0)
    a = clip_cov_select(logp, old, adv, mask, clip_ratio=0.05, generator=torch.Generator().manual_seed(7))
    b = clip_cov_select(logp, old, adv, mask, clip_ratio=0.05, generator=torch.Generator().manual_seed(7))
    assert torch.equal(a, b)
    picks = torch.zeros_like(a, dtype=torch.float64)
    for s in range(300):
        picks += clip_cov_select(logp, old, adv, mask, clip_ratio=0.05,
                                 generator=torch.Generator().manual_seed(s)).double()
    hit = picks[picks > 0]
    assert hit.numel() > 3 and hit.min() > 0.3 * hit.mean()  # spread over all candidates, not a fixed few


def _candidates(logp, old, adv, mask, lb, ub):
    """Clip-Cov's candidate set and cov mean as clip_cov_loss computes them (PPO clip range 0.2)."""
    from methods.entropy_mechanism.losses import _check, _clip_cov_candidates, _ppo_clipped

    a, maskf, n_valid = _check(logp, old, adv, mask, "t")
    _, clipped = _ppo_clipped(logp, old, a, 0.2, 0.2)
    cand, cov_mean = _clip_cov_candidates(logp, a, maskf, n_valid, clipped, lb, ub)
    return cand, cov_mean, clipped


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("window", [(1.0, 5.0), (0.05, 0.5), (-0.3, 0.2), (-2.0, -0.01)])
def test_clip_cov_candidates_equal_the_covariance_window(seed, window):
    """The per-row logp window (no (B, T) covariance built) picks exactly the tokens whose reference cov_i lies in
    (cov_lb, cov_ub), valid and unclipped: both signs of A - mean(A), rows with A = mean(A), windows holding 0."""
    logp, old, adv, mask = _batch(seed, B=7, T=11, scale=2.0)
    adv[0] = adv[1]  # at least one tie in A
    adv[2] = (adv * mask.sum(1)).sum() / mask.sum()  # A_2 = mean(A): c_2 = 0 up to rounding
    logp = logp.detach().clone()
    logp[~mask] = float("nan")  # padding may hold junk
    lb, ub = window
    cand, cov_mean, clipped = _candidates(logp, old, adv, mask, lb, ub)
    ref = torch.from_numpy(_ref_cov(torch.nan_to_num(logp), adv, mask))
    near = ((ref - lb).abs() < 1e-9) | ((ref - ub).abs() < 1e-9)  # edges may round either way (none here)
    want = mask & ~clipped & (ref > lb) & (ref < ub)
    assert torch.equal(cand | near, want | near)
    assert cov_mean.item() == pytest.approx(float(ref[mask].mean()), abs=1e-12)


@pytest.mark.parametrize("window,hit", [((-0.1, 0.1), True), ((0.0, 0.1), False), ((-0.1, 0.0), False)])
def test_clip_cov_candidates_with_equal_advantages(window, hit):
    """Equal advantages (exactly representable): cov_i = 0 for every token, a candidate iff the window holds 0."""
    logp, old, _, mask = _batch(3, B=5, T=8)
    adv = torch.full((5,), 0.5, dtype=torch.float64)
    cand, cov_mean, clipped = _candidates(logp.detach(), old, adv, mask, *window)
    assert torch.equal(cand, mask & ~clipped if hit else torch.zeros_like(mask))
    assert cov_mean.item() == 0.0


def test_clip_cov_no_candidates_selects_nothing():
    logp, old, adv, mask = _batch(2, scale=1e-3)  # tiny advantages: every cov << 1
    loss, metrics = clip_cov_loss(logp, old, adv, mask)
    ref_val, _, _ = _ref_ppo(logp, old, adv, mask, 1.0, 1.0)
    assert metrics["n_selected"].item() == 0
    assert loss.item() == pytest.approx(ref_val, rel=1e-10)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("k_ratio", [2e-3, 0.1])
def test_kl_cov_penalty_lands_on_top_k_cov_tokens(seed, k_ratio):
    logp, old, adv, mask = _batch(seed, B=8, T=16, per_token_adv=seed % 3 == 0)
    beta = 0.7
    loss, metrics = kl_cov_loss(logp, old, adv, mask, k_ratio=k_ratio, kl_coef=beta)
    loss.backward()
    lp, ol, A, m = logp.detach().numpy(), old.numpy(), _adv_bt(adv, *logp.shape).numpy(), mask.numpy()
    n = m.sum()
    cov = _ref_cov(logp, adv, mask)
    k = max(1, math.floor(k_ratio * n))
    valid_cells = sorted(zip(*np.nonzero(m)), key=lambda c: -cov[c])
    top = set(valid_cells[:k])
    val, grad = 0.0, np.zeros_like(lp)
    for c in zip(*np.nonzero(m)):
        r = math.exp(lp[c] - ol[c])
        val += -A[c] * r
        grad[c] = -A[c] * r / n
        if c in top:
            val += beta * abs(lp[c] - ol[c])
            grad[c] += beta * np.sign(lp[c] - ol[c]) / n
    assert loss.item() == pytest.approx(val / n, rel=1e-10)
    np.testing.assert_allclose(logp.grad.numpy(), grad, atol=1e-12)
    sel = kl_cov_select(logp, adv, mask, k_ratio)
    assert set(zip(*np.nonzero(sel.numpy()))) == top
    assert metrics["n_selected"].item() == k


def test_kl_cov_on_policy_penalty_is_zero():
    logp, _, adv, mask = _batch(4)
    loss, metrics = kl_cov_loss(logp, logp.detach().clone(), adv, mask)
    assert metrics["kl_penalty"].item() == 0.0
    assert loss.item() == pytest.approx(-(_adv_bt(adv, *logp.shape)[mask]).mean().item(), rel=1e-10)


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_degenerate_inputs(name):
    fn, kw = LOSSES[name]
    logp, old, adv, mask = _batch(0)
    # all-masked batch: documented zero loss with a zero (not NaN) gradient
    empty = torch.zeros_like(mask)
    loss, metrics = fn(logp, old, adv, empty, **kw)
    loss.backward()
    assert loss.item() == 0.0 and torch.equal(logp.grad, torch.zeros_like(logp))
    assert all(v.item() == 0.0 for v in metrics.values())
    # NaN advantages on valid tokens -> clear error
    bad = adv.clone()
    bad[0] = float("nan")
    with pytest.raises(ValueError, match="advantages has non-finite"):
        fn(logp, old, bad, mask, **kw)
    # mismatched shapes -> clear error
    with pytest.raises(ValueError, match="shape"):
        fn(logp, old[:, :-1], adv, mask, **kw)
    with pytest.raises(ValueError, match="advantages"):
        fn(logp, old, adv[:-1], mask, **kw)
    # NaN only on padding is ignored
    lp2 = logp.detach().clone()
    lp2[~mask] = float("nan")
    loss2, _ = fn(lp2.requires_grad_(True), old, adv, mask, **kw)
    assert torch.isfinite(loss2)


def test_float32_inputs_and_registry_defaults():
    logp, old, adv, mask = _batch(5)
    for name, (fn, kw) in LOSSES.items():
        loss, _ = fn(logp.detach().float().requires_grad_(True), old.float(), adv.float(), mask, **kw)
        assert loss.dtype == torch.float32 and torch.isfinite(loss), name
    assert LOSSES["clip_higher"][1]["eps_high"] == 0.28


@pytest.mark.parametrize("seed", range(40))
def test_nonfinite_check_fast_path_agrees_with_the_masked_rule(seed):
    # _check's one-sync probe must raise exactly when a non-finite value sits on a valid token (for a (B,)
    # advantage: on a row with any valid token), naming the first bad input, and ignore junk on padding
    from methods.entropy_mechanism.losses import _check

    g = torch.Generator().manual_seed(seed)
    B, T = 5, 7
    logp, old = torch.randn(B, T, generator=g), torch.randn(B, T, generator=g)
    per_token = bool(seed % 2)
    adv = torch.randn(B, T, generator=g) if per_token else torch.randn(B, generator=g)
    mask = torch.rand(B, T, generator=g) < 0.6
    mask[seed % B] = False if seed % 3 == 0 else mask[seed % B]  # sometimes a whole row of padding
    only_padding = seed % 4 == 0  # then junk only where the rule must ignore it
    for t in (logp, old, adv):
        junk = torch.rand(t.shape, generator=g) < (0.3 if only_padding else 0.04)
        if only_padding:
            junk &= ~(mask if t.shape == mask.shape else mask.any(1))
        vals = torch.tensor([float("nan"), float("inf"), -float("inf")])[torch.randint(0, 3, t.shape, generator=g)]
        t[junk] = vals[junk]
    row_valid = mask.any(1)
    expect = None
    for what, t, m in (("advantages", adv, mask if per_token else row_valid), ("logp", logp, mask),
                       ("old_logp", old, mask)):
        if bool((~torch.isfinite(t) & m).any()):
            expect = what
            break
    if expect is None:
        a, mf, n = _check(logp, old, adv, mask, "t")
        assert n == int(mask.sum()) and torch.equal(mf, mask.float()) and a.shape == (B, T)
    else:
        with pytest.raises(ValueError, match=f"{expect} has non-finite"):
            _check(logp, old, adv, mask, "t")
