"""hf generation backend against reference computations; vllm backend gating."""

import importlib.util

import pytest
import torch

from benchmarks.math.generation import Completion, Sampling, generate, token_entropy
from benchmarks.math.prompts import build_prompt
from benchmarks.math.tiny import build_char_tokenizer, build_tiny_model

PROBLEMS = ["1 + 1", "What is 12 * 13 - 7?", "x", "Find all real $x$ with $x^2 = 4$."]


@pytest.fixture(scope="module")
def tiny():
    torch.set_num_threads(1)
    tok = build_char_tokenizer()
    model = build_tiny_model(tok, hidden_size=32, layers=2, seed=0, initializer_range=0.3)
    return model, tok


def _prompts(tok, template="plain"):
    return [build_prompt(p, template, tok) for p in PROBLEMS]


@torch.no_grad()
def _reference_greedy(model, tok, prompt, max_new):
    """Greedy decoding by full forward passes (no cache, no padding)."""
    ids = tok(prompt, return_tensors="pt", add_special_tokens=False)["input_ids"]
    out = []
    for _ in range(max_new):
        nxt = int(model(input_ids=ids).logits[0, -1].argmax())
        out.append(nxt)
        if nxt == tok.eos_token_id:
            break
        ids = torch.cat([ids, torch.tensor([[nxt]])], dim=1)
    return out


def test_batched_left_padded_greedy_equals_reference(tiny):
    model, tok = tiny
    prompts = _prompts(tok) + _prompts(tok, "qwen25-math-cot")[:2]
    got = generate(model, tok, prompts, Sampling(n=2, max_new_tokens=12), batch_size=3)
    assert [len(g) for g in got] == [2] * len(prompts)
    for prompt, comps in zip(prompts, got):
        ref = _reference_greedy(model, tok, prompt, 12)
        ref_text = tok.decode([t for t in ref if t != tok.eos_token_id], skip_special_tokens=True)
        assert comps[0].text == comps[1].text == ref_text
        assert comps[0].num_tokens == len(ref)


def test_seeded_sampling_is_reproducible_and_seed_dependent(tiny):
    model, tok = tiny
    prompts = _prompts(tok)
    s = Sampling(n=3, temperature=1.0, max_new_tokens=10, seed=7)
    a = generate(model, tok, prompts, s, batch_size=2)
    b = generate(model, tok, prompts, s, batch_size=2)
    c = generate(model, tok, prompts, Sampling(n=3, temperature=1.0, max_new_tokens=10, seed=8), batch_size=2)
    texts = lambda r: [[x.text for x in row] for row in r]  # noqa: E731
    assert texts(a) == texts(b)
    assert texts(a) != texts(c)
    assert all(len(row) == 3 for row in a)
    assert len({x.text for row in a for x in row}) > 4  # samples actually differ


@torch.no_grad()
def test_mean_entropy_matches_forward_pass(tiny):
    """The on-the-fly entropy equals H(softmax(logits / T)) recomputed on the sampled tokens."""
    model, tok = tiny
    temperature = 0.7
    prompts = _prompts(tok)
    got = generate(model, tok, prompts, Sampling(n=2, temperature=temperature, max_new_tokens=8, seed=3),
                   batch_size=4, return_entropy=True)
    for prompt, comps in zip(prompts, got):
        p_ids = tok(prompt, return_tensors="pt", add_special_tokens=False)["input_ids"]
        for c in comps:
            c_ids = torch.tensor([c.token_ids])
            assert c_ids.shape[1] == c.num_tokens
            assert c.text == tok.decode(c.token_ids, skip_special_tokens=True)
            ids = torch.cat([p_ids, c_ids], dim=1)
            logits = model(input_ids=ids).logits[0, p_ids.shape[1] - 1 : p_ids.shape[1] - 1 + c.num_tokens]
            ref = float(token_entropy(logits, temperature).mean())
            assert c.mean_entropy == pytest.approx(ref, rel=1e-4, abs=1e-5)
    all_ents = [c.mean_entropy for row in got for c in row]
    assert 0 < min(all_ents) and max(all_ents) < torch.log(torch.tensor(float(len(tok)))).item()


def test_token_entropy_reference_values():
    uniform = torch.zeros(3, 10)
    assert torch.allclose(token_entropy(uniform), torch.full((3,), torch.log(torch.tensor(10.0)).item()))
    peaked = torch.tensor([[100.0, 0.0, 0.0]])
    assert token_entropy(peaked).item() < 1e-6
    # temperature -> infinity flattens the distribution
    x = torch.randn(5, 7)
    assert (token_entropy(x, 100.0) > token_entropy(x, 1.0)).all()


def test_stop_strings_cut_text(tiny):
    model, tok = tiny
    prompt = _prompts(tok)[1]
    full = generate(model, tok, [prompt], Sampling(max_new_tokens=12))[0][0]
    assert full.finish_reason == "length" and full.num_tokens == 12
    stop = full.text[5:7]
    cut = generate(model, tok, [prompt], Sampling(max_new_tokens=12, stop=[stop]))[0][0]
    assert cut.text == full.text[: full.text.find(stop)]
    assert cut.finish_reason == "stop" and cut.num_tokens < 12


def test_repetition_penalty_is_hfs_rule_and_changes_greedy_output(tiny):
    """One-shot EM's official rollouts use repetition_penalty 1.15: tokens already in the prompt or response get
    score / p (score > 0) or score * p (score < 0) before the argmax / sampling, as HF and vLLM define it."""
    model, tok = tiny
    p = 1.6
    for prompt in _prompts(tok)[:3]:
        ids = tok(prompt, return_tensors="pt", add_special_tokens=False)["input_ids"]
        ref = []
        with torch.no_grad():
            for _ in range(12):
                score = model(input_ids=ids).logits[0, -1].float()
                seen = torch.unique(ids[0])
                s = score[seen]
                score[seen] = torch.where(s > 0, s / p, s * p)
                nxt = int(score.argmax())
                ref.append(nxt)
                if nxt == tok.eos_token_id:
                    break
                ids = torch.cat([ids, torch.tensor([[nxt]])], dim=1)
        got = generate(model, tok, [prompt], Sampling(max_new_tokens=12, repetition_penalty=p), batch_size=1)[0][0]
        assert got.token_ids == ref
    plain = generate(model, tok, _prompts(tok), Sampling(max_new_tokens=12), batch_size=4)
    pen = generate(model, tok, _prompts(tok), Sampling(max_new_tokens=12, repetition_penalty=p), batch_size=4)
    assert [c[0].token_ids for c in plain] != [c[0].token_ids for c in pen]  # the penalty reaches the decoder
    with pytest.raises(ValueError, match="repetition_penalty"):
        Sampling(repetition_penalty=0)


def test_generation_leaves_the_callers_rng_alone(tiny):
    """Validation inside RL calls generate: it must not reset the run's random stream (before the fix, every
    rollout after a validation drew the same numbers whatever the run's seed)."""
    model, tok = tiny
    for sampling in (Sampling(max_new_tokens=4), Sampling(n=2, temperature=1.0, max_new_tokens=4, seed=5)):
        draws = []
        for seed in (1, 2):
            torch.manual_seed(seed)
            expected = torch.rand(3, generator=torch.Generator().manual_seed(seed))  # the stream's first draws
            generate(model, tok, _prompts(tok)[:2], sampling, batch_size=2)
            got = torch.rand(3)
            assert torch.equal(got, expected)
            draws.append(got)
        assert not torch.equal(draws[0], draws[1])
    a = generate(model, tok, _prompts(tok), Sampling(n=3, temperature=1.0, max_new_tokens=8, seed=3), batch_size=2)
    torch.manual_seed(123)
    b = generate(model, tok, _prompts(tok), Sampling(n=3, temperature=1.0, max_new_tokens=8, seed=3), batch_size=2)
    assert [[c.token_ids for c in r] for r in a] == [[c.token_ids for c in r] for r in b]  # still seeded by Sampling


def test_sampling_validation():
    with pytest.raises(ValueError, match="n must"):
        Sampling(n=0)
    with pytest.raises(ValueError, match="top_p"):
        Sampling(top_p=0)
    with pytest.raises(ValueError, match="temperature"):
        Sampling(temperature=-1)


def test_unknown_backend_and_missing_vllm_are_clear_errors(tiny):
    model, tok = tiny
    with pytest.raises(ValueError, match="unknown generation backend"):
        generate(model, tok, ["x"], Sampling(), backend="tgi")
    if importlib.util.find_spec("vllm") is None or not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="vllm|vLLM|GPU"):
            generate("some/model", tok, ["x"], Sampling(), backend="vllm")


@pytest.mark.gpu
def test_vllm_backend_greedy_matches_hf(tmp_path):
    pytest.importorskip("vllm")
    from benchmarks.math.tiny import save_tiny_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = save_tiny_model(tmp_path / "m", initializer_range=0.3)
    tok = AutoTokenizer.from_pretrained(path)
    prompts = _prompts(tok)
    hf = generate(AutoModelForCausalLM.from_pretrained(path), tok, prompts, Sampling(max_new_tokens=8))
    vl = generate(str(path), tok, prompts, Sampling(max_new_tokens=8), backend="vllm")
    assert [r[0].text for r in vl] == [r[0].text for r in hf]
    assert all(isinstance(r[0], Completion) and r[0].num_tokens <= 8 for r in vl)


def test_saved_tiny_model_reloads_with_identical_tokenization(tmp_path):
    """A model dir (config.json says qwen2): AutoTokenizer gives a Qwen2Tokenizer with the same ids."""
    from transformers import AutoTokenizer

    from benchmarks.math.tiny import save_tiny_model

    path = save_tiny_model(tmp_path / "m")
    tok = build_char_tokenizer()
    loaded = AutoTokenizer.from_pretrained(path)
    text = "Problem: 1 + 1\nSolution: \\boxed{2}"
    assert loaded(text, add_special_tokens=False)["input_ids"] == tok(text, add_special_tokens=False)["input_ids"]
    assert loaded.chat_template == tok.chat_template and loaded.eos_token_id == tok.eos_token_id
