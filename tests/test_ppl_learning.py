"""PPL and CPL learn the preferred action on a synthetic 1-D preference problem."""
import pytest
import torch

from methods.ppl.losses import cpl_loss, ppl_loss
from methods.ppl.policy import GaussianPolicy

GOOD, BAD, SIGMA, L = 0.5, -0.5, 0.3, 8


def _segments(mu: float, n: int, g: torch.Generator):
    obs = torch.rand(n, L, 1, generator=g) * 2 - 1
    mu_b = torch.full((n, L, 1), mu)
    act = mu_b + SIGMA * torch.randn(n, L, 1, generator=g)
    return obs, act, mu_b


@pytest.mark.parametrize("method", ["cpl", "ppl"])
def test_learns_the_preferred_action(method):
    """Segments of the policy centred at +0.5 are preferred to those of the policy at -0.5.

    Starting from a policy whose mean is ~0 everywhere, both objectives must move the mean toward
    +0.5 (PPL through its policy labels: the behaviour means are known at every step).
    """
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    pol = GaussianPolicy(obs_dim=1, act_dim=1, hidden=(32,), init_std=SIGMA)
    opt = torch.optim.Adam(pol.parameters(), lr=3e-3)
    std_b = torch.full((32, L, 1), SIGMA)
    test_obs = torch.linspace(-1, 1, 21)[:, None]
    start = float(pol.mean(test_obs).mean().detach())
    for _ in range(150):
        op, ap, mp = _segments(GOOD, 32, g)
        on, an, mn = _segments(BAD, 32, g)
        if method == "cpl":
            loss = cpl_loss(pol.log_prob(op, ap), pol.log_prob(on, an), alpha=0.1, bias=0.5)
        else:
            lp_p, kl_p = pol.log_prob_and_kl(op, ap, mp, std_b)
            lp_n, kl_n = pol.log_prob_and_kl(on, an, mn, std_b)
            loss = ppl_loss(lp_p, lp_n, kl_p, kl_n, alpha=0.1, lam=1.0)
        opt.zero_grad()
        loss.backward()
        opt.step()
    mean = pol.mean(test_obs).detach()
    assert abs(start) < 0.3
    # closer to the preferred action than to the rejected one at every state, and well on its side
    # (both losses are contrastive: they stop pushing once the pair is separated with margin)
    assert float(mean.min()) > 0.1 and float(mean.mean()) > 0.25, f"{method}: learned means {mean.squeeze().tolist()}"
    # the preferred action is more likely than the rejected one at every state
    lp_good = pol.log_prob(test_obs, torch.full((21, 1), GOOD))
    lp_bad = pol.log_prob(test_obs, torch.full((21, 1), BAD))
    assert bool((lp_good > lp_bad).all())


def test_ppl_uses_the_policy_labels():
    """Same actions, swapped labels: PPL's loss changes, CPL's (label-free) does not."""
    g = torch.Generator().manual_seed(1)
    pol = GaussianPolicy(obs_dim=1, act_dim=1, hidden=(8,))
    op, ap, mp = _segments(GOOD, 4, g)
    on, an, mn = _segments(BAD, 4, g)
    std_b = torch.full((4, L, 1), SIGMA)
    lp_p, kl_p = pol.log_prob_and_kl(op, ap, mp, std_b)
    lp_n, kl_n = pol.log_prob_and_kl(on, an, mn, std_b)
    _, kl_p_swapped = pol.log_prob_and_kl(op, ap, mn, std_b)
    _, kl_n_swapped = pol.log_prob_and_kl(on, an, mp, std_b)
    assert float(ppl_loss(lp_p, lp_n, kl_p, kl_n)) != pytest.approx(float(ppl_loss(lp_p, lp_n, kl_p_swapped, kl_n_swapped)))
