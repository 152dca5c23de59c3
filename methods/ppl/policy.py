"""Gaussian policy with a tanh-MLP mean, and the small MLPs used by P-IQL and the oracle critic."""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from methods.ppl.losses import gaussian_kl, gaussian_log_prob, mse_kl, mse_log_prob

LOGP = ("mse", "gaussian")


def mlp(in_dim: int, hidden: Sequence[int], out_dim: int, dropout: float = 0.0) -> nn.Sequential:
    """Linear-ReLU(-Dropout) stack ending in a Linear layer to ``out_dim``."""
    layers: list[nn.Module] = []
    d = in_dim
    for h in hidden:
        layers += [nn.Linear(d, h), nn.ReLU()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        d = h
    layers.append(nn.Linear(d, out_dim))
    return nn.Sequential(*layers)


class GaussianPolicy(nn.Module):
    """pi_theta(a|s) = N(tanh(MLP(s)), diag(std^2)), std state-independent (learned or fixed).

    The tanh bounds the mean to the action box; ``a`` itself is unbounded (the logged behaviour
    actions are raw Gaussian samples). ``logp`` picks the log-prob convention: ``mse`` (CPL's official
    state-based actor: -||mu - a||^2, i.e. N(mu, I/2) without constants; KLs in the same units,
    :func:`methods.ppl.losses.mse_kl`) or ``gaussian`` (exact log-densities at ``std``).
    """

    def __init__(self, obs_dim: int = 39, act_dim: int = 4, hidden: Sequence[int] = (256, 256),
                 dropout: float = 0.0, init_std: float = 0.3, learn_std: bool = False,
                 min_std: float = 0.05, max_std: float = 1.0, logp: str = "gaussian"):
        super().__init__()
        if logp not in LOGP:
            raise ValueError(f"GaussianPolicy: logp must be one of {LOGP}, got {logp!r}")
        self.logp = logp
        self.net = mlp(obs_dim, hidden, act_dim, dropout)
        self.log_std = nn.Parameter(torch.full((act_dim,), math.log(init_std)), requires_grad=learn_std)
        self.min_log_std, self.max_log_std = math.log(min_std), math.log(max_std)
        # observation normalisation (dataset statistics; identity until set_obs_stats)
        self.register_buffer("obs_mean", torch.zeros(obs_dim))
        self.register_buffer("obs_std", torch.ones(obs_dim))

    def set_obs_stats(self, obs: torch.Tensor) -> None:
        """Normalise inputs with the mean/std of ``obs`` (N, obs_dim); constant dims get std 1."""
        std = obs.std(0)
        self.obs_mean.copy_(obs.mean(0))
        self.obs_std.copy_(torch.where(std > 1e-6, std, torch.ones_like(std)))

    def mean(self, obs: torch.Tensor) -> torch.Tensor:
        """obs (..., obs_dim) -> mean (..., act_dim) in (-1, 1)."""
        return torch.tanh(self.net((obs - self.obs_mean) / self.obs_std))

    def std(self) -> torch.Tensor:
        """(act_dim,)"""
        return self.log_std.clamp(self.min_log_std, self.max_log_std).exp()

    def log_prob(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        """log pi_theta(act|obs) in the ``logp`` convention: obs (..., obs_dim), act (..., act_dim) -> (...)."""
        if self.logp == "mse":
            return mse_log_prob(act, self.mean(obs))
        return gaussian_log_prob(act, self.mean(obs), self.std())

    def log_prob_and_kl(self, obs: torch.Tensor, act: torch.Tensor, mu_b: torch.Tensor,
                        std_b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(log pi_theta(act|obs), KL(N(mu_b, std_b^2) || pi_theta(.|obs))), both (...), one forward pass
        (``mse``: both without their theta-free constants)."""
        mu = self.mean(obs)
        if self.logp == "mse":
            return mse_log_prob(act, mu), mse_kl(mu_b, mu)
        std = self.std()
        return gaussian_log_prob(act, mu, std), gaussian_kl(mu_b, std_b, mu, std)

    def numpy_actor(self):
        """The deterministic (mean) action as a NumPy function ``obs (obs_dim,) -> (act_dim,) float32``.

        A snapshot of the current weights, for rollouts: one torch call per env step costs ~70 us
        (~15% of a MetaWorld step), this ~10 us. Same math as :meth:`mean` in float32 (dropout is
        the identity at evaluation); equal to :meth:`act` up to float rounding.
        """
        import numpy as np

        layers: list = []
        for m in self.net:
            if isinstance(m, nn.Linear):
                layers.append((m.weight.detach().cpu().numpy().T.copy(), m.bias.detach().cpu().numpy().copy()))
            elif isinstance(m, nn.ReLU):
                layers.append(None)
            elif not isinstance(m, nn.Dropout):
                raise TypeError(f"numpy_actor: unsupported layer {m}")
        mean, std = self.obs_mean.cpu().numpy().copy(), self.obs_std.cpu().numpy().copy()

        def act(obs) -> np.ndarray:
            x = (np.asarray(obs, dtype=np.float32) - mean) / std
            for layer in layers:
                x = np.maximum(x, 0.0) if layer is None else x @ layer[0] + layer[1]
            return np.tanh(x)

        return act

    @torch.no_grad()
    def act(self, obs) -> "np.ndarray":  # noqa: F821
        """Deterministic (mean) action for one numpy observation."""
        import numpy as np

        x = torch.as_tensor(np.asarray(obs, dtype=np.float32), device=self.obs_mean.device)
        return self.mean(x).cpu().numpy()
