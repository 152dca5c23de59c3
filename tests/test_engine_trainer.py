"""The TRL adapter: golden equivalence with TRL's own loss, mini-batch-wide token selection, a short training run."""
from __future__ import annotations

import copy
import string

import pytest
import torch

datasets = pytest.importorskip("datasets")
trl = pytest.importorskip("trl")

from tokenizers import Tokenizer, decoders, models  # noqa: E402
from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM  # noqa: E402
from trl import GRPOConfig, GRPOTrainer  # noqa: E402

from methods.engine.trainer import PolicyLossGRPOTrainer, select_over_batch  # noqa: E402

assert trl.__version__ == "1.16.0", "the golden test pins TRL 1.16.0: re-check the adapter before upgrading"


def tiny_tokenizer() -> PreTrainedTokenizerFast:
    specials = ["<|pad|>", "<|endoftext|>", "<unk>"]
    chars = [c for c in string.printable if c not in "\t\r\x0b\x0c"]
    core = Tokenizer(models.BPE(vocab={t: i for i, t in enumerate(specials + chars)}, merges=[], unk_token="<unk>"))
    core.decoder = decoders.Fuse()
    core.add_special_tokens(specials)
    return PreTrainedTokenizerFast(tokenizer_object=core, eos_token="<|endoftext|>", pad_token="<|pad|>",
                                   unk_token="<unk>", padding_side="left")


def tiny_model(tok, seed: int = 0) -> Qwen2ForCausalLM:
    cfg = Qwen2Config(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                      tie_word_embeddings=True, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
                      bos_token_id=None)
    torch.manual_seed(seed)
    return Qwen2ForCausalLM(cfg)


def _dataset(n=8):
    return datasets.Dataset.from_list([{"prompt": f"Problem: {i}+{i}\nSolution:", "answer": str(2 * i)}
                                       for i in range(n)])


def _count_sevens(prompts, completions, **kw):
    return [float(c.count("7")) / max(len(c), 1) for c in completions]


def _config(tmp_path, **kw):
    base = dict(output_dir=str(tmp_path / "out"), use_cpu=True, bf16=False, per_device_train_batch_size=4,
                num_generations=4, max_completion_length=8, report_to=[], logging_steps=1, save_strategy="no",
                loss_type="bnpo", max_steps=1, seed=0)
    base.update(kw)
    return GRPOConfig(**base)


def _trainer(cls, model, tok, args, **kw):
    tr = cls(model=copy.deepcopy(model), reward_funcs=_count_sevens, args=args, train_dataset=_dataset(),
             processing_class=tok, **kw)
    tr.model.train()
    tr.current_gradient_accumulation_steps = args.gradient_accumulation_steps
    return tr


def _fixed_batch(tr, B=8, T=7, seed=0):
    """A fixed batch of random prompts/completions with ragged masks and off-policy old log-probs."""
    g = torch.Generator().manual_seed(seed)
    vocab = tr.model.config.vocab_size
    prompt_ids = torch.randint(3, vocab, (B, 5), generator=g)
    prompt_mask = torch.ones(B, 5, dtype=torch.long)
    prompt_mask[0, :2] = 0  # left padding
    completion_ids = torch.randint(3, vocab, (B, T), generator=g)
    lengths = torch.randint(2, T + 1, (B,), generator=g)
    completion_mask = (torch.arange(T)[None] < lengths[:, None]).long()
    batch = dict(prompt_ids=prompt_ids, prompt_mask=prompt_mask, completion_ids=completion_ids,
                 completion_mask=completion_mask, advantages=torch.randn(B, generator=g) * 2.0)
    with torch.no_grad():
        logp, _ = PolicyLossGRPOTrainer._micro_logps(tr, tr.model, batch)
    batch["old_per_token_logps"] = logp + 0.4 * torch.randn(B, T, generator=g)  # ratios cross the clip bounds
    batch["num_items_in_batch"] = completion_mask.sum()
    return batch


def _loss_and_grads(tr, batch):
    tr.model.zero_grad()
    loss = tr.compute_loss(tr.model, batch)
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in tr.model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("ours,stock", [
    ({"policy_loss": "grpo"}, {"epsilon": 0.2}),
    ({"policy_loss": "clip_higher"}, {"epsilon": 0.2, "epsilon_high": 0.28}),
])
def test_golden_adapter_equals_trl_bnpo(tmp_path, ours, stock):
    tok = tiny_tokenizer()
    model = tiny_model(tok)
    ref = _trainer(GRPOTrainer, model, tok, _config(tmp_path, **stock))
    mine = _trainer(PolicyLossGRPOTrainer, model, tok, _config(tmp_path), **ours)
    batch = _fixed_batch(ref)
    l_ref, g_ref = _loss_and_grads(ref, batch)
    l_mine, g_mine = _loss_and_grads(mine, batch)
    assert ref._metrics["train"]["clip_ratio/region_mean"][-1] > 0, "the batch must exercise clipping"
    assert torch.allclose(l_mine, l_ref, rtol=1e-6, atol=1e-7), (l_mine, l_ref)
    assert g_ref.keys() == g_mine.keys() and len(g_ref) > 0
    for name in g_ref:
        assert torch.allclose(g_mine[name], g_ref[name], rtol=1e-5, atol=1e-7), name
    assert mine._metrics["train"]["entropy"][-1] == pytest.approx(ref._metrics["train"]["entropy"][-1], rel=1e-6)


def test_golden_sequence_level_equals_trl_gspo(tmp_path):
    tok = tiny_tokenizer()
    model = tiny_model(tok)
    ref = _trainer(GRPOTrainer, model, tok,
                   _config(tmp_path, loss_type="grpo", importance_sampling_level="sequence", epsilon=3e-4,
                           epsilon_high=4e-4))
    mine = _trainer(PolicyLossGRPOTrainer, model, tok,
                    _config(tmp_path, importance_sampling_level="sequence"),
                    policy_loss="grpo", loss_kwargs={"eps_low": 3e-4, "eps_high": 4e-4})
    batch = _fixed_batch(ref)
    l_ref, g_ref = _loss_and_grads(ref, batch)
    l_mine, g_mine = _loss_and_grads(mine, batch)
    assert torch.allclose(l_mine, l_ref, rtol=1e-6, atol=1e-7)
    for name in g_ref:
        assert torch.allclose(g_mine[name], g_ref[name], rtol=1e-5, atol=1e-7), name


def _split(batch, parts):
    B = batch["prompt_ids"].size(0)
    out = []
    for i in range(parts):
        sl = slice(i * B // parts, (i + 1) * B // parts)
        out.append({k: (v[sl] if torch.is_tensor(v) and v.dim() > 0 else v) for k, v in batch.items()})
    return out


@pytest.mark.parametrize("loss,kw", [
    ("kl_cov", {"k_ratio": 0.05}),
    ("clip_cov", {"clip_ratio": 0.05, "cov_lb": 0.0, "cov_ub": 50.0}),
    ("grpo", {}),
])
def test_selection_over_whole_minibatch_is_microbatch_invariant(tmp_path, loss, kw):
    """Splitting the optimisation mini-batch into 4 micro-batches (gradient accumulation) changes neither the
    selected tokens nor the accumulated gradient."""
    tok = tiny_tokenizer()
    model = tiny_model(tok)
    one = _trainer(PolicyLossGRPOTrainer, model, tok, _config(tmp_path, per_device_train_batch_size=16,
                                                               num_generations=4),
                   policy_loss=loss, loss_kwargs=kw, selection_seed=3)
    four = _trainer(PolicyLossGRPOTrainer, model, tok,
                    _config(tmp_path, gradient_accumulation_steps=4, steps_per_generation=4),
                    policy_loss=loss, loss_kwargs=kw, selection_seed=3)
    batch = _fixed_batch(one, B=16, seed=1)

    one._buffered_inputs, one._step = [batch], 0
    l_full, g_full = _loss_and_grads(one, batch)
    sel_full = one.last_selection

    micro = _split(batch, 4)
    four._buffered_inputs = micro
    four.model.zero_grad()
    sels, total = [], 0.0
    for i, mb in enumerate(micro):
        four._step = i
        loss_mb = four.compute_loss(four.model, mb)
        loss_mb.backward()
        total += loss_mb.item()
        sels.append(four.last_selection)
    sel_micro = torch.cat(sels, 0)

    # the reference selection over the whole batch, computed directly from the rollout policy's log-probs
    g = torch.Generator().manual_seed(3 * 1_000_003 + 0)
    logp = batch["old_per_token_logps"]
    direct = select_over_batch(loss, logp, logp, batch["advantages"], batch["completion_mask"], one.loss_kwargs, g)
    if loss != "grpo":
        assert direct.sum() >= 2
        assert torch.equal(sel_full, direct)
        assert torch.equal(sel_micro, direct)
        # a per-micro-batch selection would differ (sanity check that the test can fail)
        per_micro = torch.cat([select_over_batch(loss, logp[i * 4:(i + 1) * 4], logp[i * 4:(i + 1) * 4],
                                                 mb["advantages"], mb["completion_mask"], one.loss_kwargs,
                                                 torch.Generator().manual_seed(3 * 1_000_003))
                               for i, mb in enumerate(micro)])
        assert not torch.equal(per_micro, direct)
    assert total == pytest.approx(l_full.item(), rel=1e-5, abs=1e-7)
    for name, p in four.model.named_parameters():
        assert torch.allclose(p.grad, g_full[name], rtol=1e-4, atol=1e-6), name


def test_adapter_rejects_bad_config(tmp_path):
    tok = tiny_tokenizer()
    model = tiny_model(tok)
    with pytest.raises(ValueError, match="unknown loss"):
        _trainer(PolicyLossGRPOTrainer, model, tok, _config(tmp_path), policy_loss="nope")
    with pytest.raises(ValueError, match="beta"):
        _trainer(PolicyLossGRPOTrainer, model, tok, _config(tmp_path, beta=0.1), policy_loss="grpo")
    with pytest.raises(ValueError, match="unknown key"):
        _trainer(PolicyLossGRPOTrainer, model, tok, _config(tmp_path), policy_loss="kl_cov",
                 loss_kwargs={"clip_ratio": 0.1})
    with pytest.raises(ValueError, match="sequence"):
        _trainer(PolicyLossGRPOTrainer, model, tok, _config(tmp_path, importance_sampling_level="sequence"),
                 policy_loss="kl_cov")


def test_rollouts_through_fastgen_equal_trls_generate(tmp_path):
    """The adapter's rollouts (benchmarks.math.fastgen) are the samples TRL's own ``model.generate`` path draws
    from the same RNG state: same completion ids, cut after the first EOS."""
    tok = tiny_tokenizer()
    model = tiny_model(tok, seed=3)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() >= 2:
                p.normal_(0, 0.4)  # peaky distributions: some rows stop early, lengths vary
    args = _config(tmp_path, max_completion_length=12, temperature=0.9, top_p=0.95)
    tr = _trainer(PolicyLossGRPOTrainer, model, tok, args)
    prompts = [tok(f"Problem: {i}+{i * 7}\nSolution:", add_special_tokens=False)["input_ids"] for i in range(12)]
    assert tr._fast_rollouts_ok(None, {})
    torch.manual_seed(5)
    fast, _ = tr._generate_single_turn(prompts, None, {}, 4)
    torch.manual_seed(5)
    ref, _ = GRPOTrainer._generate_single_turn(tr, prompts, None, {}, 4)
    assert fast == ref
    assert len({len(c) for c in ref}) > 1  # ragged: early EOS happened
    tr.generation_config.repetition_penalty = 1.1  # not reproduced by the fast loop -> TRL's path
    assert not tr._fast_rollouts_ok(None, {})


def test_window_selection_needs_no_extra_forward_when_rollout_logps_exist(tmp_path):
    """GA = 4 with the rollout's log-probs present: exactly one forward per micro-batch (no extra no-grad passes);
    without them (a fully on-policy rollout) the window's other micro-batches are forwarded once more."""
    tok = tiny_tokenizer()
    model = tiny_model(tok)
    tr = _trainer(PolicyLossGRPOTrainer, model, tok,
                  _config(tmp_path, gradient_accumulation_steps=4, steps_per_generation=4),
                  policy_loss="clip_cov", loss_kwargs={"clip_ratio": 0.05, "cov_lb": 0.0, "cov_ub": 50.0})
    batch = _fixed_batch(tr, B=16, seed=1)
    calls = []
    real = tr._micro_logps
    tr._micro_logps = lambda m, inputs: calls.append(1) or real(m, inputs)
    for with_old in (True, False):
        micro = _split(batch if with_old else {k: v for k, v in batch.items() if k != "old_per_token_logps"}, 4)
        tr._buffered_inputs, tr._window_index, calls[:] = micro, -1, []
        for i, mb in enumerate(micro):
            tr._step = i
            tr.compute_loss(tr.model, mb).backward()
        assert len(calls) == (4 if with_old else 4 + 3)
