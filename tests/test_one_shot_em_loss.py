"""One-shot EM: entropy loss value/gradient, alignment, gradient path; variance selection."""
import math

import pytest
import torch

from methods.one_shot_em.loss import (
    entropy_loss,
    next_token_alignment,
    response_mask_from_lengths,
    token_entropy,
)
from methods.one_shot_em.selection import rank_by_variance, rank_pool_with_model, variance_score


def direct_entropy(row, temperature):
    """Entropy of one distribution, written out with plain Python floats."""
    z = [float(x) / temperature for x in row]
    m = max(z)
    e = [math.exp(x - m) for x in z]
    s = sum(e)
    p = [x / s for x in e]
    return -sum(pi * math.log(pi) for pi in p if pi > 0)


@pytest.mark.parametrize("temperature", [1.0, 0.5, 2.0])
def test_entropy_loss_value_matches_direct(temperature):
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 5, 7, generator=g, dtype=torch.float64) * 3
    mask = torch.tensor([[1, 1, 0, 0, 0], [0, 1, 1, 1, 1], [0, 0, 0, 1, 0]])
    total, n = 0.0, 0
    for b in range(3):
        for t in range(5):
            if mask[b, t]:
                total += direct_entropy(logits[b, t].tolist(), temperature)
                n += 1
    got = entropy_loss(logits, mask, temperature)
    assert got.item() == pytest.approx(total / n, rel=1e-10)  # token mean, not per-sequence mean


def test_entropy_loss_is_token_mean_not_sequence_mean():
    logits = torch.zeros(2, 4, 3, dtype=torch.float64)
    logits[0] = torch.tensor([10.0, 0.0, 0.0])  # near-zero entropy rows
    mask = torch.tensor([[1, 0, 0, 0], [1, 1, 1, 1]])
    # seq 0: one ~0 token; seq 1: four log(3) tokens -> token mean 4 log3 / 5 (seq mean would be log3/2)
    assert entropy_loss(logits, mask).item() == pytest.approx(
        (direct_entropy([10, 0, 0], 1.0) + 4 * math.log(3)) / 5, rel=1e-9)


@pytest.mark.parametrize("temperature", [1.0, 0.5])
def test_entropy_loss_gradient_matches_analytic(temperature):
    """dH/dz_i = -(1/T) p_i (log p_i + H) per masked position, divided by the token count."""
    g = torch.Generator().manual_seed(1)
    logits = (torch.randn(2, 4, 6, generator=g, dtype=torch.float64) * 2).requires_grad_(True)
    mask = torch.tensor([[1, 1, 1, 0], [0, 1, 0, 1]], dtype=torch.float64)
    entropy_loss(logits, mask, temperature).backward()
    logp = torch.log_softmax(logits.detach() / temperature, -1)
    p = logp.exp()
    h = -(p * logp).sum(-1, keepdim=True)
    expected = -(1 / temperature) * p * (logp + h) * mask.unsqueeze(-1) / mask.sum()
    torch.testing.assert_close(logits.grad, expected)
    assert torch.autograd.gradcheck(lambda z: entropy_loss(z, mask, temperature), (logits.detach().clone().requires_grad_(True),))


def test_empty_mask_gives_zero_and_bad_shapes_raise():
    logits = torch.randn(1, 3, 4, requires_grad=True)
    loss = entropy_loss(logits, torch.zeros(1, 3))
    assert loss.item() == 0.0
    loss.backward()
    with pytest.raises(ValueError, match="mask"):
        entropy_loss(logits, torch.ones(1, 4))
    with pytest.raises(ValueError, match="temperature"):
        token_entropy(logits, 0.0)


def test_alignment_on_constructed_example():
    """Prompt of 3 tokens, response of 2 (+ 1 pad). Position t carries entropy marker t, so the
    aligned loss must use exactly the positions that predict the response tokens: 2 and 3."""
    total_len, vocab = 6, 5
    # logits whose entropy strictly increases with position: scale the first logit down
    scales = torch.tensor([8.0, 6.0, 4.0, 2.0, 1.0, 0.5], dtype=torch.float64)
    logits = torch.zeros(1, total_len, vocab, dtype=torch.float64)
    logits[0, :, 0] = scales
    resp = response_mask_from_lengths(torch.tensor([3]), torch.tensor([2]), total_len)
    assert resp.tolist() == [[0, 0, 0, 1, 1, 0]]
    al_logits, al_mask = next_token_alignment(logits, resp)
    assert al_logits.shape == (1, 5, vocab) and al_mask.tolist() == [[0, 0, 1, 1, 0]]
    h = token_entropy(logits[0])
    assert entropy_loss(al_logits, al_mask).item() == pytest.approx(((h[2] + h[3]) / 2).item())
    # the public code's off-by-one would use positions 3 and 4: a different value
    assert entropy_loss(logits, resp).item() == pytest.approx(((h[3] + h[4]) / 2).item())
    assert (h[2] + h[3]).item() != pytest.approx((h[3] + h[4]).item())


def test_alignment_matches_a_real_causal_lm():
    """With a tiny causal LM, logits[:, t-1] are the ones whose log-softmax scores token t."""
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    cfg = transformers.Qwen2Config(vocab_size=17, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                   num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=32)
    model = transformers.Qwen2ForCausalLM(cfg).eval()
    ids = torch.randint(0, 17, (1, 7))
    with torch.no_grad():
        out = model(ids, labels=ids)
    al_logits, al_mask = next_token_alignment(out.logits, torch.ones_like(ids))
    nll = -torch.log_softmax(al_logits, -1).gather(-1, ids[:, 1:, None]).squeeze(-1)
    # transformers' own shifted LM loss uses the same alignment
    assert nll.mean().item() == pytest.approx(out.loss.item(), rel=1e-5)


def test_gradient_flows_through_logits_only():
    """Sampled tokens enter only as a mask (integers): the loss is a function of the logits alone,
    and the parameters receive gradient only via the logits of the forward pass."""
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    cfg = transformers.Qwen2Config(vocab_size=11, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                   num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=32)
    model = transformers.Qwen2ForCausalLM(cfg)
    prompt = torch.randint(0, 11, (2, 3))
    with torch.no_grad():  # sampling: no graph
        gen = model.generate(prompt, do_sample=True, max_new_tokens=4, min_new_tokens=4, pad_token_id=0)
    assert gen.grad_fn is None and not gen.dtype.is_floating_point
    resp = torch.zeros_like(gen)
    resp[:, 3:] = 1
    out = model(gen)
    logits = out.logits
    logits.retain_grad()
    loss = entropy_loss(*next_token_alignment(logits, resp), temperature=0.5)
    loss.backward()
    assert logits.grad is not None and logits.grad[:, -1].abs().sum() == 0  # last position predicts nothing
    assert logits.grad[:, 2:-1].abs().sum() > 0
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


# ---------------------------------------------------------------- selection
def test_variance_score():
    assert variance_score([]) == 0.0
    assert variance_score([1, 1, 1, 1]) == 0.0
    assert variance_score([0, 0, 0]) == 0.0
    assert variance_score([1, 0, 1, 0]) == pytest.approx(0.25)
    assert variance_score([True, False, False, False]) == pytest.approx(0.1875)


def test_selection_picks_max_variance_with_stub_grader():
    pool = [{"id": f"q{i}", "problem": f"P{i}", "answer": str(i)} for i in range(5)]
    # stub model: for problem i, the first `right[i]` of k samples are correct
    right = {"P0": 0, "P1": 8, "P2": 3, "P3": 4, "P4": 1}
    calls = {}

    def sample(problems, k, temperature, seed):
        calls["args"] = (k, temperature, seed)
        return [[f"\\boxed{{{p[1:] if j < right[p] else 'wrong'}}}" for j in range(k)] for p in problems]

    def grade(pairs):
        return [c == f"\\boxed{{{g}}}" for c, g in pairs]

    top = rank_pool_with_model(pool, sample, grade, k=8, temperature=0.7, seed=3, top=2)
    assert calls["args"] == (8, 0.7, 3)
    assert [t.row["id"] for t in top] == ["q3", "q2"]
    assert top[0].score == pytest.approx(0.25) and top[0].accuracy == pytest.approx(0.5)
    assert top[1].score == pytest.approx(3 / 8 * 5 / 8)
    # the sample texts stay with their prompt (the per-style diagnostics of select.py read them)
    assert top[0].completions == [f"\\boxed{{{'3' if j < 4 else 'wrong'}}}" for j in range(8)]
    assert [bool(c.endswith("{3}")) for c in top[0].completions] == top[0].successes
    full = rank_by_variance(pool, [[True, False]] * 5)
    assert [t.row["id"] for t in full] == [r["id"] for r in pool]  # ties keep pool order
    with pytest.raises(ValueError, match="answer"):
        rank_pool_with_model([{"id": "x", "problem": "P"}], sample, grade)
