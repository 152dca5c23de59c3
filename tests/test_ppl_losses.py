"""PPL/CPL math: exact Gaussian log-probs and KLs, losses vs direct computations, gradient facts."""
import math
from pathlib import Path

import pytest
import torch
from torch.distributions import Independent, Normal, kl_divergence

from methods.ppl.losses import (awr_weights, bradley_terry_loss, cpl_loss, cpl_loss_labels, expectile_loss,
                                gaussian_kl, gaussian_log_prob, mse_kl, mse_log_prob, ppl_loss, ppl_score)
from methods.ppl.policy import GaussianPolicy


def _normal(mu, std):
    return Independent(Normal(mu, std.expand_as(mu)), 1)


@pytest.mark.parametrize("seed", range(5))
def test_gaussian_log_prob_and_kl_match_torch_distributions(seed):
    g = torch.Generator().manual_seed(seed)
    mu, a = torch.randn(7, 5, 4, generator=g), torch.randn(7, 5, 4, generator=g) * 2
    std = torch.rand(7, 5, 4, generator=g) + 0.05
    torch.testing.assert_close(gaussian_log_prob(a, mu, std), _normal(mu, std).log_prob(a))
    mu2, std2 = torch.randn(7, 5, 4, generator=g), torch.rand(7, 5, 4, generator=g) + 0.05
    torch.testing.assert_close(gaussian_kl(mu, std, mu2, std2), kl_divergence(_normal(mu, std), _normal(mu2, std2)))
    # equal std: squared distance / (2 s^2)
    s = torch.full((4,), 0.3)
    torch.testing.assert_close(gaussian_kl(mu, s, mu2, s), (mu - mu2).pow(2).sum(-1) / (2 * 0.09))


@pytest.mark.parametrize("learn_std", [False, True])
def test_policy_log_prob_and_kl_exact(learn_std):
    torch.manual_seed(0)
    pol = GaussianPolicy(39, 4, hidden=(32, 32), init_std=0.4, learn_std=learn_std)
    if learn_std:
        with torch.no_grad():
            pol.log_std.copy_(torch.tensor([-1.0, -0.5, 0.0, -2.0]))
    obs, act = torch.randn(3, 6, 39), torch.randn(3, 6, 4)
    mu_b, std_b = torch.rand(3, 6, 4) * 2 - 1, torch.full((3, 6, 4), 0.3)
    dist = _normal(pol.mean(obs), pol.std())
    lp, kl = pol.log_prob_and_kl(obs, act, mu_b, std_b)
    torch.testing.assert_close(lp, dist.log_prob(act))
    torch.testing.assert_close(pol.log_prob(obs, act), dist.log_prob(act))
    torch.testing.assert_close(kl, kl_divergence(_normal(mu_b, std_b), dist))
    assert pol.mean(obs).abs().max() < 1


def test_cpl_and_ppl_losses_match_direct_computation():
    g = torch.Generator().manual_seed(1)
    B, L = 6, 64
    lp_pos, lp_neg = torch.randn(B, L, generator=g) - 2, torch.randn(B, L, generator=g) - 2
    kl_pos, kl_neg = torch.rand(B, L, generator=g), torch.rand(B, L, generator=g)
    alpha, bias, lam = 0.1, 0.5, 1.0
    direct = sum(-math.log(1 / (1 + math.exp(-(alpha * float(lp_pos[i].sum()) - bias * alpha * float(lp_neg[i].sum())))))
                 for i in range(B)) / B
    assert float(cpl_loss(lp_pos, lp_neg, alpha, bias)) == pytest.approx(direct, rel=1e-5)
    s = lambda lp, kl: sum(alpha * float(lp[t]) - lam * float(kl[t]) for t in range(L))  # noqa: E731
    for b in (1.0, 0.5):  # the conservative bias scales the rejected segment's whole score
        direct = sum(math.log1p(math.exp(-(s(lp_pos[i], kl_pos[i]) - b * s(lp_neg[i], kl_neg[i]))))
                     for i in range(B)) / B
        assert float(ppl_loss(lp_pos, lp_neg, kl_pos, kl_neg, alpha, lam, b)) == pytest.approx(direct, rel=1e-5)
    torch.testing.assert_close(ppl_score(lp_pos, kl_pos, alpha, lam), (alpha * lp_pos - lam * kl_pos).sum(-1))
    # the KL weight defaults to alpha (regret derivation)
    torch.testing.assert_close(ppl_score(lp_pos, kl_pos, alpha), alpha * (lp_pos - kl_pos).sum(-1))
    # lam 0: PPL == CPL with the same bias
    for b in (1.0, 0.5):
        torch.testing.assert_close(ppl_loss(lp_pos, lp_neg, kl_pos, kl_neg, alpha, 0.0, b),
                                   cpl_loss(lp_pos, lp_neg, alpha, b))
    # large-margin limits
    big = torch.full((2, 3), 100.0)
    assert float(cpl_loss(big, -big, 1.0, 1.0)) < 1e-6
    assert float(ppl_loss(-big, big, torch.zeros(2, 3), torch.zeros(2, 3), 1.0, bias=1.0)) == pytest.approx(600.0)


def test_ppl_gradient_with_lam0_matches_alpha_only_contrastive_direction():
    """With lam = 0, PPL's gradient wrt the policy parameters is parallel to that of -log sigmoid(alpha(A+ - A-))."""
    torch.manual_seed(3)
    pol = GaussianPolicy(39, 4, hidden=(16,), dropout=0.0)
    obs_p, obs_n = torch.randn(5, 8, 39), torch.randn(5, 8, 39)
    act_p, act_n = torch.randn(5, 8, 4), torch.randn(5, 8, 4)
    mu_b = torch.rand(5, 8, 4)
    std_b = torch.full((5, 8, 4), 0.3)

    def grads(loss):
        pol.zero_grad()
        loss.backward()
        return torch.cat([p.grad.flatten() for p in pol.parameters() if p.grad is not None])

    lp_p, kl_p = pol.log_prob_and_kl(obs_p, act_p, mu_b, std_b)
    lp_n, kl_n = pol.log_prob_and_kl(obs_n, act_n, mu_b, std_b)
    g_ppl = grads(ppl_loss(lp_p, lp_n, kl_p, kl_n, alpha=0.3, lam=0.0, bias=1.0))
    lp_p, lp_n = pol.log_prob(obs_p, act_p), pol.log_prob(obs_n, act_n)
    contrast = -torch.nn.functional.logsigmoid(0.3 * (lp_p.sum(-1) - lp_n.sum(-1))).mean()
    g_ref = grads(contrast)
    cos = torch.nn.functional.cosine_similarity(g_ppl, g_ref, dim=0)
    assert float(cos) == pytest.approx(1.0, abs=1e-5)
    torch.testing.assert_close(g_ppl, g_ref)
    # and with lam > 0 the KL term changes the direction
    lp_p, kl_p = pol.log_prob_and_kl(obs_p, act_p, mu_b, std_b)
    lp_n, kl_n = pol.log_prob_and_kl(obs_n, act_n, mu_b, std_b)
    g_kl = grads(ppl_loss(lp_p, lp_n, kl_p, kl_n, alpha=0.3, lam=1.0, bias=1.0))
    assert float(torch.nn.functional.cosine_similarity(g_kl, g_ref, dim=0)) < 0.999


def test_auxiliary_losses_match_definitions():
    g = torch.Generator().manual_seed(2)
    rp, rn = torch.randn(4, 10, generator=g), torch.randn(4, 10, generator=g)
    torch.testing.assert_close(bradley_terry_loss(rp, rn),
                               -torch.log(torch.sigmoid(rp.sum(-1) - rn.sum(-1))).mean())
    d = torch.tensor([-2.0, -0.5, 0.0, 1.0, 3.0])
    torch.testing.assert_close(expectile_loss(d, 0.7), torch.tensor([0.3 * 4, 0.3 * 0.25, 0.0, 0.7, 0.7 * 9]).mean())
    w = awr_weights(torch.tensor([-1.0, 0.0, 1.0, 10.0]), beta=1 / 3, max_weight=100.0)
    torch.testing.assert_close(w, torch.tensor([math.exp(-3), 1.0, math.exp(3), 100.0]))


def test_mse_convention_is_the_half_variance_gaussian_without_constants():
    """CPL's official score -||mu - a||^2 = log N(a; mu, I/2) + const, and mse_kl = KL(pi_b || N(mu, I/2)) + const,
    with mse_kl equal to E_{a ~ pi_b}[-mse_log_prob(a, mu)] - D s_b^2 (the regret derivation's identity)."""
    g = torch.Generator().manual_seed(4)
    mu, a, mu_b = torch.randn(6, 4, generator=g), torch.randn(6, 4, generator=g), torch.randn(6, 4, generator=g)
    half = torch.full((4,), math.sqrt(0.5))
    const = gaussian_log_prob(a, mu, half) - mse_log_prob(a, mu)
    torch.testing.assert_close(const, torch.full((6,), const[0].item()))
    s_b = torch.full((4,), 0.3)
    kl_const = gaussian_kl(mu_b, s_b, mu, half) - mse_kl(mu_b, mu)
    torch.testing.assert_close(kl_const, torch.full((6,), kl_const[0].item()))
    samples = mu_b + 0.3 * torch.randn(200_000, 6, 4, generator=g)
    mc = -mse_log_prob(samples, mu).mean(0) - 4 * 0.09
    torch.testing.assert_close(mc, mse_kl(mu_b, mu), atol=0.02, rtol=0.01)


@pytest.mark.parametrize("mode", ["mse", "gaussian"])
def test_policy_logp_conventions(mode):
    torch.manual_seed(0)
    pol = GaussianPolicy(39, 4, hidden=(16,), logp=mode)
    obs, act, mu_b = torch.randn(3, 5, 39), torch.randn(3, 5, 4), torch.rand(3, 5, 4)
    lp, kl = pol.log_prob_and_kl(obs, act, mu_b, torch.full((3, 5, 4), 0.3))
    if mode == "mse":
        torch.testing.assert_close(lp, -(pol.mean(obs) - act).pow(2).sum(-1))
        torch.testing.assert_close(kl, (pol.mean(obs) - mu_b).pow(2).sum(-1))
    else:
        torch.testing.assert_close(lp, gaussian_log_prob(act, pol.mean(obs), pol.std()))
    with pytest.raises(ValueError, match="logp"):
        GaussianPolicy(39, 4, logp="laplace")


GOLDEN_CPL = Path(__file__).resolve().parents[2] / "shared" / "golden" / "cpl.npz"


@pytest.mark.skipif(not GOLDEN_CPL.exists(), reason="../shared/golden/cpl.npz not found (a user's clone has no ../shared)")
def test_cpl_loss_equals_the_official_code_golden():
    """Loss and gradients equal jhejna/cpl (research/algs/cpl.py, biased_bce_with_logits / _get_cpl_loss) on the
    golden cases: k* from given log-probs, s* from actor means and actions through the official -||mu - a||^2."""
    import numpy as np

    z = np.load(GOLDEN_CPL)
    cases = sorted({k.split("/")[0] for k in z.files})
    assert cases
    for c in cases:
        f = lambda k: torch.tensor(z[f"{c}/{k}"], dtype=torch.float64)  # noqa: E731
        alpha, bias, label = float(z[f"{c}/alpha"]), float(z[f"{c}/bias"]), f("label")
        if f"{c}/mu_1" in z.files:
            mu_1, mu_2 = f("mu_1").requires_grad_(), f("mu_2").requires_grad_()
            lp_1, lp_2 = mse_log_prob(f("action_1"), mu_1), mse_log_prob(f("action_2"), mu_2)
            torch.testing.assert_close(lp_1, f("lp_1"), atol=1e-12, rtol=0)
            torch.testing.assert_close(lp_2, f("lp_2"), atol=1e-12, rtol=0)
            loss = cpl_loss_labels(lp_1, lp_2, label, alpha, bias)
            g1, g2 = torch.autograd.grad(loss, (mu_1, mu_2))
            torch.testing.assert_close(g1, f("grad_mu_1"), atol=1e-12, rtol=0)
            torch.testing.assert_close(g2, f("grad_mu_2"), atol=1e-12, rtol=0)
        else:
            lp_1, lp_2 = f("lp_1").requires_grad_(), f("lp_2").requires_grad_()
            loss = cpl_loss_labels(lp_1, lp_2, label, alpha, bias)
            g1, g2 = torch.autograd.grad(loss, (lp_1, lp_2))
            torch.testing.assert_close(g1, f("grad_lp_1"), atol=1e-12, rtol=0)
            torch.testing.assert_close(g2, f("grad_lp_2"), atol=1e-12, rtol=0)
        assert float(loss.detach()) == pytest.approx(float(z[f"{c}/loss"]), abs=1e-12), c
        # hard labels: the oriented loss the trainer uses is the same number
        hard = (label != 0.5)
        if hard.any():
            pos = torch.where((label[hard] > 0.5)[:, None], lp_2[hard], lp_1[hard])
            neg = torch.where((label[hard] > 0.5)[:, None], lp_1[hard], lp_2[hard])
            torch.testing.assert_close(cpl_loss(pos, neg, alpha, bias),
                                       cpl_loss_labels(lp_1[hard], lp_2[hard], label[hard], alpha, bias))
