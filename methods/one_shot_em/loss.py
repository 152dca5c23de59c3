"""Entropy-minimisation loss of One-shot EM (Gao et al., 2025, "One-shot Entropy Minimization",
arXiv 2505.20282, Sec. 2).

For a prompt x and a response y sampled from the current policy *without* gradient, a forward pass
with gradient over [x; y] gives logits z_t. At every generated position the loss uses the
next-token entropy of softmax(z_t / T):

    H_t = -sum_v p_v log p_v,    p = softmax(z_t / T),
    L   = sum_{b,t} H_{b,t} m_{b,t} / sum_{b,t} m_{b,t}     (token mean over the micro-batch).

Alignment (``next_token_alignment``): in a causal LM the logits at position t-1 are the distribution
that *produced* token t. The distributions of the generated tokens y_1..y_n are therefore those at
positions P-1 .. P+n-2 (P = prompt length), i.e. the last prompt position up to the second-to-last
response position. The public code takes the logits at positions P .. P+n-1 instead (one step late:
it drops the distribution of the first response token and adds the one after the last); we do it
right and test it.

No reward, no labels, no reference model. The loss depends on the sampled tokens only through
which positions are masked; gradients flow through the logits only.
"""
from __future__ import annotations

import torch

__all__ = ["token_entropy", "entropy_loss", "next_token_alignment", "response_mask_from_lengths", "rollout_tensors"]


def token_entropy(logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Entropy of softmax(logits / temperature) along the last axis.

    Args:
        logits: (..., V) float tensor.
        temperature: T > 0, applied inside the softmax.

    Returns:
        (...) tensor of entropies in nats (computed in float32 or wider for stability).
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    z = logits.float() if logits.dtype in (torch.float16, torch.bfloat16) else logits
    logp = torch.log_softmax(z / temperature, dim=-1)
    return -(logp.exp() * logp).sum(dim=-1)


def entropy_loss(logits: torch.Tensor, mask: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Token-mean entropy over the masked positions (One-shot EM, Eq. 1).

    Args:
        logits: (B, T, V); already aligned, i.e. logits[b, t] is the distribution that produced a
            generated token wherever mask[b, t] = 1 (see ``next_token_alignment``).
        mask: (B, T) 0/1 (bool or float); generated, non-pad positions.
        temperature: T inside the softmax (paper: 0.5).

    Returns:
        scalar tensor sum(H * mask) / sum(mask); 0 (still differentiable) when the mask is empty.
    """
    if logits.dim() != 3 or mask.shape != logits.shape[:2]:
        raise ValueError(f"expected logits (B, T, V) and mask (B, T); got {tuple(logits.shape)} and {tuple(mask.shape)}")
    m = mask.to(dtype=torch.float32 if logits.dtype != torch.float64 else torch.float64)
    h = token_entropy(logits, temperature)
    return (h * m).sum() / m.sum().clamp_min(1.0)


def next_token_alignment(logits: torch.Tensor, response_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Align a causal LM's logits with the generated tokens they predict.

    Args:
        logits: (B, L, V) logits of a forward pass over the full sequence [prompt; response].
        response_mask: (B, L) 1 where input_ids[b, t] is a generated (non-pad) response token.

    Returns:
        (logits[:, :-1], response_mask[:, 1:]) — shapes (B, L-1, V) and (B, L-1): position t-1
        predicts token t, so the mask of token t moves to the position of its predictor.
    """
    if logits.shape[:2] != response_mask.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and response_mask {tuple(response_mask.shape)} disagree")
    return logits[:, :-1, :], response_mask[:, 1:]


def response_mask_from_lengths(prompt_lengths: torch.Tensor, response_lengths: torch.Tensor,
                               total_len: int, left_pad: torch.Tensor | None = None) -> torch.Tensor:
    """(B, L) mask of response tokens for rows laid out as [pad * left_pad; prompt; response; pad].

    Args:
        prompt_lengths: (B,) real prompt tokens per row.
        response_lengths: (B,) real generated tokens per row (up to and including EOS).
        total_len: L.
        left_pad: (B,) number of left pads (default 0).
    """
    b = prompt_lengths.shape[0]
    pos = torch.arange(total_len).unsqueeze(0).expand(b, -1)
    lp = torch.zeros_like(prompt_lengths) if left_pad is None else left_pad
    start = (lp + prompt_lengths).unsqueeze(1)
    end = start + response_lengths.unsqueeze(1)
    return ((pos >= start) & (pos < end)).long()


def rollout_tensors(prompt_ids: list[int], responses: list[list[int]],
                    pad_id: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Rows [prompt; response; pad] of one prompt's sampled responses, ready for the forward pass.

    Args:
        prompt_ids: the prompt's P token ids (shared by every row).
        responses: the n sampled responses' token ids, each already cut after its first EOS
            (``Completion.token_ids``); lengths may differ.
        pad_id: id written after a shorter response (masked out everywhere).

    Returns:
        input_ids (n, P + R) with R the longest response, attention_mask (1 on prompt and response
        tokens, 0 on the right padding) and response_mask (1 on response tokens only).
    """
    if not prompt_ids:
        raise ValueError("rollout_tensors: empty prompt")
    if not responses:
        raise ValueError("rollout_tensors: no responses")
    n, p = len(responses), len(prompt_ids)
    width = p + max(len(r) for r in responses)
    ids = torch.full((n, width), pad_id, dtype=torch.long)
    ids[:, :p] = torch.tensor(prompt_ids, dtype=torch.long)
    for i, r in enumerate(responses):
        ids[i, p:p + len(r)] = torch.tensor(r, dtype=torch.long)
    resp = response_mask_from_lengths(torch.full((n,), p), torch.tensor([len(r) for r in responses]), width)
    attn = resp.clone()
    attn[:, :p] = 1
    return ids, attn, resp
