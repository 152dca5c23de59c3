"""Policy losses of "The Entropy Mechanism of RL for Reasoning LMs" (Cui et al., 2025, arXiv 2505.22617).

Pure functions of tensors; they know nothing about TRL. Shapes, used throughout:

* ``logp``       (B, T) float — log pi_theta(y_t | y_<t, x) of the sampled response tokens (with grad).
* ``old_logp``   (B, T) float — the same under the rollout (behaviour) policy; treated as a constant.
* ``advantages`` (B,) or (B, 1) or (B, T) float — one advantage per response (broadcast over T) or per token.
* ``mask``       (B, T) bool/0-1 — 1 on valid response tokens, 0 on padding.

Every loss is the *token mean over the mask* of a per-token loss (``sum(l * mask) / sum(mask)``) and returns
``(loss, metrics)`` where ``metrics`` maps a name to a detached 0-dim tensor.

Degenerate input: mismatched shapes and non-finite values on valid tokens raise ``ValueError``; an all-masked
batch returns a documented zero loss (``0 * logp.sum()``: finite, zero gradient, still attached to the graph so
``backward()`` works) and zero metrics. Non-finite values on *masked* positions are ignored.

The Clip-Cov / KL-Cov token selection is split out (``clip_cov_select``, ``kl_cov_select``) so that a caller
that sees the optimisation mini-batch in pieces (gradient accumulation, several ranks) can select over the
whole mini-batch once and pass the result back through ``selected=``.
"""
from __future__ import annotations

import math

import torch

__all__ = [
    "token_covariance",
    "grpo_loss",
    "clip_cov_select",
    "clip_cov_loss",
    "kl_cov_select",
    "kl_cov_loss",
    "LOSSES",
]


# ----------------------------------------------------------------------------------------------------------------
# input checking
# ----------------------------------------------------------------------------------------------------------------
def _check(logp: torch.Tensor, old_logp: torch.Tensor | None, advantages: torch.Tensor, mask: torch.Tensor,
           name: str) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Validate shapes/values; return (advantages broadcast to (B, T), float mask (B, T), n_valid)."""
    if logp.dim() != 2:
        raise ValueError(f"{name}: logp must have shape (B, T), got {tuple(logp.shape)}")
    if old_logp is not None and old_logp.shape != logp.shape:
        raise ValueError(f"{name}: old_logp shape {tuple(old_logp.shape)} != logp shape {tuple(logp.shape)}")
    if mask.shape != logp.shape:
        raise ValueError(f"{name}: mask shape {tuple(mask.shape)} != logp shape {tuple(logp.shape)}")
    B, T = logp.shape
    if advantages.dim() == 1:
        if advantages.shape[0] != B:
            raise ValueError(f"{name}: advantages shape {tuple(advantages.shape)} does not match batch size {B}")
        advantages = advantages.unsqueeze(1)
    if advantages.dim() != 2 or advantages.shape[0] != B or advantages.shape[1] not in (1, T):
        raise ValueError(f"{name}: advantages must have shape (B,), (B, 1) or (B, T) = ({B}, {T}); "
                         f"got {tuple(advantages.shape)}")
    valid = mask.bool()
    maskf = valid.to(logp.dtype)
    adv = advantages.to(logp.dtype)
    # Fast path, one host sync (a sync per test stalls a GPU; the per-tensor isfinite loop this replaces cost
    # ~13% of a (64, 4096) GRPO loss on the CPU): sum(x * 0) is 0 exactly when every x is finite and NaN
    # otherwise. Only when some value anywhere is not finite does the exact test below look at the mask.
    probe = (logp.detach() * 0).sum() + (adv * 0).sum()
    if old_logp is not None:
        probe = probe + (old_logp * 0).sum()
    n_valid, probe = torch.stack([valid.sum().double(), probe.double()]).tolist()  # float64: exact counts
    if n_valid and probe != 0:
        # a per-response advantage counts on rows with any valid token
        row_valid = valid.any(dim=1, keepdim=True) if adv.shape[1] == 1 else valid
        for what, t, m in (("advantages", adv, row_valid), ("logp", logp, valid), ("old_logp", old_logp, valid)):
            if t is not None and bool((~torch.isfinite(t.detach()) & m).any()):
                raise ValueError(f"{name}: {what} has non-finite values (NaN/inf) on valid (mask=1) tokens")
    return adv.expand(B, T), maskf, int(n_valid)


def _zero(logp: torch.Tensor, keys: tuple[str, ...]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The documented zero loss of an all-masked batch (zero gradient, attached to the graph)."""
    zero = logp.new_zeros(())
    return torch.nan_to_num(logp, nan=0.0, posinf=0.0, neginf=0.0).sum() * 0.0, {k: zero for k in keys}


def _masked(t: torch.Tensor, maskf: torch.Tensor) -> torch.Tensor:
    """``t`` with masked positions set to exactly 0 (so NaN padding never leaks into a sum)."""
    return torch.where(maskf.bool(), t, torch.zeros_like(t))


def _token_mean(per_token: torch.Tensor, maskf: torch.Tensor, n_valid: int) -> torch.Tensor:
    return _masked(per_token, maskf).sum() / n_valid


# ----------------------------------------------------------------------------------------------------------------
# covariance (the mechanism, Sec. 3 of the paper)
# ----------------------------------------------------------------------------------------------------------------
def token_covariance(logp: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-token centred covariance term between log-probability and advantage (Cui et al. 2025, Eq. 11/Sec. 4).

    ``cov_i = (A_i - mean_valid(A)) * (logp_i - mean_valid(logp))`` with means over the valid tokens of the
    whole batch and ``logp`` detached. Its batch mean is the covariance whose sign drives the entropy change
    (Theorem: dH ~ -eta * Cov(log pi, A)).

    Args: logp (B, T), advantages (B,) | (B, 1) | (B, T), mask (B, T).
    Returns: (B, T) detached tensor, exactly 0 outside the mask (all zeros for an all-masked batch).
    """
    adv, maskf, n_valid = _check(logp, None, advantages, mask, "token_covariance")
    if n_valid == 0:
        return torch.zeros_like(logp, dtype=logp.dtype).detach()
    return _cov(logp.detach(), adv.detach(), maskf, n_valid)


# ----------------------------------------------------------------------------------------------------------------
# GRPO / clip-higher
# ----------------------------------------------------------------------------------------------------------------
def grpo_loss(logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor,
              eps_low: float = 0.2, eps_high: float = 0.2, *, level: str = "token"
              ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """PPO clipped surrogate, token-mean over the mask (GRPO, Shao et al. 2024; clip-higher, DAPO, Yu et al. 2025).

    ``l_i = max(-A_i r_i, -A_i clip(r_i, 1 - eps_low, 1 + eps_high))`` with ``r_i = exp(logp_i - old_logp_i)``.
    Clip-higher is ``eps_high = 0.28``.

    ``level="sequence"`` is the GSPO variant (Zheng et al. 2025, used by EMPO-style configs): one ratio per
    response ``s = exp(mean_valid_t(logp - old_logp))`` clipped the same way, and the loss is the mean over the
    responses that have at least one valid token (sequence-mean, as GSPO defines it).

    Args: logp, old_logp, mask (B, T); advantages (B,) | (B, 1) | (B, T) (per-response for ``"sequence"``).
    Returns: (loss 0-dim, metrics: ``clip_frac`` fraction of valid tokens whose clip is active,
    ``logratio_abs_mean`` mean |logp - old_logp|, ``ratio_mean``).
    """
    keys = ("clip_frac", "logratio_abs_mean", "ratio_mean")
    if eps_low < 0 or eps_high < 0:
        raise ValueError(f"grpo_loss: eps_low/eps_high must be >= 0, got {eps_low}, {eps_high}")
    if level not in ("token", "sequence"):
        raise ValueError(f"grpo_loss: level must be 'token' or 'sequence', got {level!r}")
    adv, maskf, n_valid = _check(logp, old_logp, advantages, mask, "grpo_loss")
    if n_valid == 0:
        return _zero(logp, keys)
    log_ratio = _masked(logp - old_logp.detach(), maskf)
    if level == "sequence":
        lengths = maskf.sum(-1, keepdim=True)
        has = lengths.squeeze(1) > 0
        log_ratio = log_ratio.sum(-1, keepdim=True) / lengths.clamp(min=1.0)  # (B, 1)
        adv = adv[:, :1]
    ratio = torch.exp(log_ratio)
    surr1 = -adv * ratio
    surr2 = -adv * torch.clamp(ratio, 1.0 - eps_low, 1.0 + eps_high)
    per = torch.maximum(surr1, surr2)
    clipped = (surr2 > surr1).to(logp.dtype)
    with torch.no_grad():
        abs_lr = _masked((logp - old_logp).detach().abs(), maskf).sum() / n_valid
    if level == "sequence":
        loss = per.squeeze(1)[has].mean()
        clip_frac = (clipped.expand_as(maskf) * maskf).sum() / n_valid
        ratio_mean = ratio.detach().squeeze(1)[has].mean()
    else:
        loss = _token_mean(per, maskf, n_valid)
        clip_frac = (clipped * maskf).sum() / n_valid
        ratio_mean = _masked(ratio.detach(), maskf).sum() / n_valid
    return loss, {"clip_frac": clip_frac.detach(), "logratio_abs_mean": abs_lr, "ratio_mean": ratio_mean}


# ----------------------------------------------------------------------------------------------------------------
# Clip-Cov
# ----------------------------------------------------------------------------------------------------------------
def _ppo_clipped(logp, old_logp, adv, eps_low, eps_high) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token PPO loss (B, T) and a bool (B, T) 'the clip is active' indicator."""
    ratio = torch.exp(logp - old_logp.detach())
    surr1 = -adv * ratio
    surr2 = -adv * torch.clamp(ratio, 1.0 - eps_low, 1.0 + eps_high)
    return torch.maximum(surr1, surr2), (surr2 > surr1)


def clip_cov_select(logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor,
                    clip_ratio: float = 2e-4, cov_lb: float = 1.0, cov_ub: float = 5.0,
                    eps_low: float = 1.0, eps_high: float = 1.0,
                    generator: torch.Generator | None = None) -> torch.Tensor:
    """Tokens whose gradient Clip-Cov stops (Cui et al. 2025, Sec. 4.2, Eq. 13).

    Candidates are valid tokens not already clipped by PPO with ``cov_lb < cov_i < cov_ub``; of these,
    ``n = max(1, floor(clip_ratio * N_valid))`` (or all, if fewer) are drawn uniformly without replacement with
    ``generator`` (``None`` = torch's global RNG), as verl does; the draw itself is rejection sampling of uniform positions
    instead of verl's full ``randperm`` over the candidates (same distribution, another stream of random
    numbers). The draw is
    over the whole batch given.

    Args: logp, old_logp, mask (B, T); advantages (B,) | (B, 1) | (B, T).
    Returns: bool (B, T) selection, False outside the mask.
    """
    if not 0.0 <= clip_ratio <= 1.0:
        raise ValueError(f"clip_cov: clip_ratio must be in [0, 1], got {clip_ratio}")
    if cov_lb >= cov_ub:
        raise ValueError(f"clip_cov: need cov_lb < cov_ub, got cov_lb={cov_lb}, cov_ub={cov_ub}")
    adv, maskf, n_valid = _check(logp, old_logp, advantages, mask, "clip_cov_select")
    if n_valid == 0:
        return torch.zeros(logp.shape, dtype=torch.bool, device=logp.device)
    with torch.no_grad():
        _, clipped = _ppo_clipped(logp.detach(), old_logp, adv, eps_low, eps_high)
        cand, _ = _clip_cov_candidates(logp.detach(), adv, maskf, n_valid, clipped, cov_lb, cov_ub)
        return _clip_cov_pick(cand, n_valid, clip_ratio, generator)


def _cov(logp: torch.Tensor, adv: torch.Tensor, maskf: torch.Tensor, n_valid: int) -> torch.Tensor:
    """token_covariance on already-checked (B, T) inputs (logp detached, adv broadcast and finite)."""
    valid = maskf.bool()
    zero = torch.zeros((), dtype=logp.dtype, device=logp.device)
    lp = torch.where(valid, logp, zero)  # padding may hold junk (even NaN): never multiply it by 0
    if adv.dim() == 2 and adv.stride(1) == 0:  # one advantage per response (a broadcast view): (B, 1) math
        a = adv[:, :1]
        a_mean = (a.squeeze(1) * maskf.sum(1)).sum() / n_valid
    else:
        a = adv
        a_mean = (adv * maskf).sum() / n_valid
    return torch.where(valid, (a - a_mean) * (lp - lp.sum() / n_valid), zero)


def _draw_distinct(cand: torch.Tensor, n: int, n_cand: int, generator: torch.Generator | None) -> torch.Tensor:
    """Flat positions of n distinct candidates (``cand`` bool, flat) drawn uniformly without replacement.

    Rejection sampling: i.i.d. uniform positions over the whole batch, kept when they hit a candidate, first n
    distinct hits in draw order -- a uniform n-subset of the candidates, like ``randperm(n_cand)[:n]``, at a cost
    of O(n N / n_cand) small ops instead of passes over the batch (``nonzero``, a permutation or a cumsum).
    """
    N = cand.numel()
    picked = torch.empty(0, dtype=torch.long, device=cand.device)
    while picked.numel() < n:
        need = n - picked.numel()
        m = int(2 * need * N / n_cand) + 16
        pos = torch.randint(0, N, (m,), generator=generator, device="cpu").to(cand.device)
        hits = torch.cat([picked, pos[cand[pos]]])
        uniq, inv = torch.unique(hits, return_inverse=True)
        first = torch.full((uniq.numel(),), hits.numel(), dtype=torch.long, device=hits.device)
        first.scatter_reduce_(0, inv, torch.arange(hits.numel(), device=hits.device), reduce="amin")
        picked = uniq[first.argsort()][:n]  # distinct, in order of first appearance
    return picked


def _clip_cov_candidates(logp, adv, maskf, n_valid, clipped, cov_lb, cov_ub, *, mean_only: bool = False
                         ) -> tuple[torch.Tensor | None, torch.Tensor]:
    """Clip-Cov's candidates ``valid & ~clipped & (cov_lb < cov_i < cov_ub)`` and ``mean_valid(cov)``.

    With one advantage per response (the GRPO case) ``cov_i = c_b (logp_i - mean(logp))`` with the row constant
    ``c_b = A_b - mean(A)``, so the window on ``cov_i`` is a per-row window on ``logp_i`` itself and the (B, T)
    covariance need not be built: 3 fewer passes over the batch, the largest part of Clip-Cov's extra cost.
    A token exactly on a window edge may round to the other side than ``cov_i`` would (measure zero in practice).
    Padding is NaN here, so every comparison excludes it. A (B, T) advantage falls back to :func:`_cov`.
    ``mean_only``: the candidates are not needed (the selection was given), return ``(None, mean)``.
    """
    if not (adv.dim() == 2 and adv.stride(1) == 0):
        cov = _cov(logp, adv, maskf, n_valid)
        if mean_only:
            return None, cov.sum() / n_valid
        cand = (cov > cov_lb) & (cov < cov_ub) & ~clipped
        if cov_lb < 0:  # cov is exactly 0 off the mask: only a negative lower bound lets padding in
            cand &= maskf.bool()
        return cand, cov.sum() / n_valid
    lp = torch.where(maskf.bool(), logp, torch.full((), float("nan"), dtype=logp.dtype, device=logp.device))
    n_row = maskf.sum(1, keepdim=True)
    row_sum = lp.nansum(1, keepdim=True)  # an all-padding row sums to 0
    lp_mean = row_sum.sum() / n_valid
    a = adv[:, :1]
    c = a - (a * n_row).sum() / n_valid  # (B, 1)
    cov_mean = (c * (row_sum - n_row * lp_mean)).sum() / n_valid
    if mean_only:
        return None, cov_mean
    inf = torch.full_like(c, float("inf"))
    empty = not (cov_lb < 0 < cov_ub)  # c = 0 gives cov = 0: a candidate only if the window holds 0
    safe = torch.where(c == 0, torch.ones_like(c), c)
    e1, e2 = lp_mean + cov_lb / safe, lp_mean + cov_ub / safe
    lo = torch.where(c > 0, e1, torch.where(c < 0, e2, inf if empty else -inf))
    hi = torch.where(c > 0, e2, torch.where(c < 0, e1, -inf if empty else inf))
    cand = (lp > lo) & (lp < hi)
    cand &= ~clipped
    return cand, cov_mean


def _clip_cov_pick(cand, n_valid, clip_ratio, generator) -> torch.Tensor:
    """n of the candidates (:func:`_clip_cov_candidates`) drawn uniformly without replacement -- the
    distribution of verl's ``candidates[torch.randperm(len(candidates))[:n]]`` -- by rejection sampling
    (:func:`_draw_distinct`): no full permutation and no ``nonzero`` over the batch (measured: those two were
    ~40% of the loss's time at 64 x 4096). All candidates when there are at most n."""
    n_cand = int(cand.sum())
    n = min(max(1, math.floor(clip_ratio * n_valid)), n_cand)
    if n == n_cand:
        return cand
    selected = torch.zeros(cand.shape, dtype=torch.bool, device=cand.device)
    selected.view(-1)[_draw_distinct(cand.flatten(), n, n_cand, generator)] = True
    return selected


def clip_cov_loss(logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor,
                  clip_ratio: float = 2e-4, cov_lb: float = 1.0, cov_ub: float = 5.0,
                  eps_low: float = 1.0, eps_high: float = 1.0, generator: torch.Generator | None = None,
                  *, selected: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Clip-Cov loss (Cui et al. 2025, Sec. 4.2): PPO-clipped surrogate whose selected tokens get no gradient.

    The selected tokens (``clip_cov_select``, or ``selected`` if given, e.g. chosen over a larger mini-batch)
    have their per-token loss multiplied by 0 but stay in the token-mean denominator ``N_valid``.
    The paper's scripts use the PPO clip range [0, 2] (``eps_low = eps_high = 1``).

    Args: logp, old_logp, mask (B, T); advantages (B,) | (B, 1) | (B, T); selected bool (B, T) or None.
    Returns: (loss, metrics: ``n_selected``, ``frac_selected``, ``clip_frac``, ``cov_mean``, ``logratio_abs_mean``).
    """
    keys = ("n_selected", "frac_selected", "clip_frac", "cov_mean", "logratio_abs_mean")
    if not 0.0 <= clip_ratio <= 1.0:
        raise ValueError(f"clip_cov: clip_ratio must be in [0, 1], got {clip_ratio}")
    if cov_lb >= cov_ub:
        raise ValueError(f"clip_cov: need cov_lb < cov_ub, got cov_lb={cov_lb}, cov_ub={cov_ub}")
    adv, maskf, n_valid = _check(logp, old_logp, advantages, mask, "clip_cov_loss")
    if selected is not None and selected.shape != logp.shape:
        raise ValueError(f"clip_cov_loss: selected shape {tuple(selected.shape)} != logp shape {tuple(logp.shape)}")
    if n_valid == 0:
        return _zero(logp, keys)
    # (written for few full-batch passes: the selection must cost little next to the PPO surrogate itself)
    valid = maskf.bool()
    log_ratio = logp - old_logp.detach()
    ratio = torch.exp(log_ratio)
    surr1 = -adv * ratio
    surr2 = -adv * torch.clamp(ratio, 1.0 - eps_low, 1.0 + eps_high)
    per, clipped = torch.maximum(surr1, surr2), surr2 > surr1
    with torch.no_grad():
        cand, cov_mean = _clip_cov_candidates(logp.detach(), adv, maskf, n_valid, clipped, cov_lb, cov_ub,
                                              mean_only=selected is not None)
        if selected is None:
            selected = _clip_cov_pick(cand, n_valid, clip_ratio, generator)
        dropped = selected.bool() | ~valid
    loss = torch.where(dropped, torch.zeros((), dtype=per.dtype, device=per.device), per).sum() / n_valid
    with torch.no_grad():
        n_sel = (n_valid - (~dropped).sum()).to(logp.dtype)  # selected valid tokens
        lr_abs = torch.where(valid, log_ratio.detach().abs(), torch.zeros((), dtype=logp.dtype, device=logp.device))
        metrics = {
            "n_selected": n_sel,
            "frac_selected": n_sel / n_valid,
            "clip_frac": (clipped & valid).sum().to(logp.dtype) / n_valid,
            "cov_mean": cov_mean,
            "logratio_abs_mean": lr_abs.sum() / n_valid,
        }
    return loss, metrics


# ----------------------------------------------------------------------------------------------------------------
# KL-Cov
# ----------------------------------------------------------------------------------------------------------------
def kl_cov_select(logp: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor,
                  k_ratio: float = 2e-3) -> torch.Tensor:
    """Tokens KL-Cov penalises: the top ``n = max(1, floor(k_ratio * N_valid))`` valid tokens by ``cov_i``
    (Cui et al. 2025, Sec. 4.2, Eq. 14). Ties are broken by ``torch.topk`` (deterministic for a given input).

    Args: logp, mask (B, T); advantages (B,) | (B, 1) | (B, T).  Returns: bool (B, T), False outside the mask.
    """
    if not 0.0 <= k_ratio <= 1.0:
        raise ValueError(f"kl_cov: k_ratio must be a fraction in [0, 1], got {k_ratio}")
    adv, maskf, n_valid = _check(logp, None, advantages, mask, "kl_cov_select")
    if n_valid == 0:
        return torch.zeros(logp.shape, dtype=torch.bool, device=logp.device)
    with torch.no_grad():
        return _kl_cov_pick(_cov(logp.detach(), adv, maskf, n_valid), maskf, n_valid, k_ratio)


def _kl_cov_pick(cov, maskf, n_valid, k_ratio) -> torch.Tensor:
    selected = torch.zeros(cov.shape, dtype=torch.bool, device=cov.device)
    score = torch.where(maskf.bool(), cov, torch.full_like(cov, -math.inf)).flatten()
    n = min(max(1, math.floor(k_ratio * n_valid)), n_valid)
    selected.view(-1)[torch.topk(score, n).indices] = True
    return selected


def kl_cov_loss(logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor,
                k_ratio: float = 2e-3, kl_coef: float = 1.0, *, selected: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """KL-Cov loss (Cui et al. 2025, Sec. 4.2): unclipped policy gradient plus a |log-ratio| penalty on the
    top-covariance tokens.

    ``l_i = -A_i r_i + kl_coef * |logp_i - old_logp_i| * [i selected]``, token mean over the mask. Selection from
    ``kl_cov_select`` unless ``selected`` (bool (B, T)) is given. On a fully on-policy mini-batch
    (logp == old_logp) the penalty's value is 0; it acts once the policy has moved (later PPO mini-batches).

    Returns: (loss, metrics: ``n_selected``, ``frac_selected``, ``cov_mean``, ``logratio_abs_mean``,
    ``kl_penalty`` = the penalty's contribution to the loss).
    """
    keys = ("n_selected", "frac_selected", "cov_mean", "logratio_abs_mean", "kl_penalty")
    if kl_coef < 0:
        raise ValueError(f"kl_cov: kl_coef must be >= 0, got {kl_coef}")
    if not 0.0 <= k_ratio <= 1.0:
        raise ValueError(f"kl_cov: k_ratio must be a fraction in [0, 1], got {k_ratio}")
    adv, maskf, n_valid = _check(logp, old_logp, advantages, mask, "kl_cov_loss")
    if selected is not None and selected.shape != logp.shape:
        raise ValueError(f"kl_cov_loss: selected shape {tuple(selected.shape)} != logp shape {tuple(logp.shape)}")
    if n_valid == 0:
        return _zero(logp, keys)
    with torch.no_grad():
        cov = _cov(logp.detach(), adv, maskf, n_valid)
        if selected is None:
            selected = _kl_cov_pick(cov, maskf, n_valid, k_ratio)
    log_ratio = logp - old_logp.detach()
    selm = (selected.bool() & maskf.bool()).to(logp.dtype)
    pg = _token_mean(-adv * torch.exp(log_ratio), maskf, n_valid)
    penalty = kl_coef * _masked(log_ratio.abs(), selm).sum() / n_valid
    with torch.no_grad():
        n_sel = selm.sum()
        metrics = {
            "n_selected": n_sel,
            "frac_selected": n_sel / n_valid,
            "cov_mean": cov.sum() / n_valid,
            "logratio_abs_mean": _masked(log_ratio.detach().abs(), maskf).sum() / n_valid,
            "kl_penalty": penalty.detach(),
        }
    return pg + penalty, metrics


#: Registry of policy losses by config name. Each value: (loss function, default keyword arguments).
LOSSES: dict[str, tuple] = {
    "grpo": (grpo_loss, {"eps_low": 0.2, "eps_high": 0.2}),
    "clip_higher": (grpo_loss, {"eps_low": 0.2, "eps_high": 0.28}),
    "clip_cov": (clip_cov_loss, {"clip_ratio": 2e-4, "cov_lb": 1.0, "cov_ub": 5.0, "eps_low": 1.0, "eps_high": 1.0}),
    "kl_cov": (kl_cov_loss, {"k_ratio": 2e-3, "kl_coef": 1.0}),
}
