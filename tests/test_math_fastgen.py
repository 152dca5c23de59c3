"""The compact decode loop (benchmarks.math.fastgen) against transformers' ``generate``.

Greedy and seeded sampled outputs must be token-identical to ``generate`` (padding or not, early EOS with row
compaction, top-p, stop strings, batch 1); independently seeded samples must match ``generate``'s per-position
token frequencies; unsupported models and ``REPRO_FASTGEN=0`` fall back to ``generate``. Every test runs with
both networks: the fused C++ forward (fastgen_cpu.cpp) and the tensor-op one (``REPRO_FASTGEN_CPP=0``).
"""
import shutil
import warnings

import pytest
import torch

from benchmarks.math import fastgen
from benchmarks.math.generation import Sampling, generate_hf
from benchmarks.math.prompts import build_prompt
from benchmarks.math.tiny import build_char_tokenizer, build_tiny_model

@pytest.fixture(autouse=True, params=["cpp", "tensor"])
def impl(request, monkeypatch):
    """Which network decodes: the C++ one must build wherever a compiler exists (a failed build fails here)."""
    if request.param == "cpp":
        if not (shutil.which("c++") or shutil.which("g++")):
            pytest.skip("no C++ compiler: the fused forward cannot be built here")
        monkeypatch.setenv("REPRO_FASTGEN_CPP", "1")
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # the build's fallback warning is a failure here
            assert fastgen._extension() is not None
    else:
        monkeypatch.setenv("REPRO_FASTGEN_CPP", "0")
    return request.param


PROBLEMS = [f"Compute {i} + {3 * i % 17} × {i % 9}." for i in range(40)] + ["1 + 1", "Find $x$ with $x^2 = 4$."]


@pytest.fixture(scope="module")
def tok():
    t = build_char_tokenizer()
    t.padding_side = "left"
    return t


# hidden, layers, init, heads, kv heads: grouped-query attention with head sizes 8 and 16 (the C++ attention's
# vector loops), plain multi-head attention with head size 6 (its scalar loop) and 4 query heads per kv head
@pytest.fixture(scope="module", params=[(32, 2, 0.3, 4, 2), (64, 3, 0.5, 4, 2), (24, 2, 0.3, 4, 4), (64, 2, 0.4, 8, 2)],
                ids=["h32", "h64", "h24-mha", "h64-rep4"])
def model(request, tok):
    torch.set_num_threads(1)
    hidden, layers, init, heads, kv = request.param
    return build_tiny_model(tok, hidden_size=hidden, layers=layers, seed=1, initializer_range=init, num_heads=heads,
                            num_kv_heads=kv)


def _enc(tok, problems):
    return tok([build_prompt(p, "plain") for p in problems], return_tensors="pt", padding=True,
               add_special_tokens=False)


def _eos(tok):
    # the digits as extra EOS ids make rows finish at many different steps (exercises row compaction)
    return [tok.eos_token_id] + tok.convert_tokens_to_ids(list("0123"))


def _hf(model, tok, enc, eos, seed, **kw):
    torch.manual_seed(seed)
    with torch.no_grad():
        out = model.generate(**enc, max_new_tokens=24, pad_token_id=tok.pad_token_id, eos_token_id=eos, **kw)
    return out[:, enc["input_ids"].shape[1]:]


def _fast(model, tok, enc, eos, seed, temperature=0.0, top_p=1.0):
    torch.manual_seed(seed)
    ids, _ = fastgen.decode(model, enc["input_ids"], enc["attention_mask"], max_new_tokens=24,
                            temperature=temperature, top_p=top_p, eos_ids=eos, pad_id=tok.pad_token_id)
    return ids


@pytest.mark.parametrize("problems", [PROBLEMS, PROBLEMS[:1], PROBLEMS[:3], ["1 + 1"] * 12],
                         ids=["padded-42", "one", "padded-3", "unpadded-12"])
def test_greedy_is_token_identical_to_generate(model, tok, problems):
    enc, eos = _enc(tok, problems), _eos(tok)
    ref = _hf(model, tok, enc, eos, 0, do_sample=False)
    got = _fast(model, tok, enc, eos, 0)
    assert got.shape == ref.shape and torch.equal(got, ref)
    finished = torch.isin(ref, torch.tensor(eos)).any(1)
    if len(set(problems)) > 8:
        assert 0 < int(finished.sum()) < len(problems)  # some rows finished early, some did not


@pytest.mark.parametrize("temperature,top_p", [(1.0, 1.0), (0.7, 0.9), (1.3, 0.5)])
def test_seeded_samples_are_token_identical_to_generate(model, tok, temperature, top_p):
    """Same seed -> the same samples: the noise is drawn as torch.multinomial draws it, for the whole batch."""
    enc, eos = _enc(tok, PROBLEMS), _eos(tok)
    ref = _hf(model, tok, enc, eos, 11, do_sample=True, temperature=temperature, top_p=top_p, top_k=0)
    got = _fast(model, tok, enc, eos, 11, temperature, top_p)
    assert got.shape == ref.shape and torch.equal(got, ref)


def test_sampling_distribution_matches_generate(tok):
    """Independent samples (different seeds): per-position token frequencies agree within 5 binomial SDs."""
    torch.set_num_threads(1)
    model = build_tiny_model(tok, hidden_size=32, layers=2, seed=3, initializer_range=0.15)
    n = 1500
    enc = _enc(tok, ["Compute 7 + 8."] * n)
    eos = [tok.eos_token_id]
    ref = _hf(model, tok, enc, eos, 100, do_sample=True, temperature=1.0, top_p=0.9, top_k=0)[:, :4]
    got = _fast(model, tok, enc, eos, 200, 1.0, 0.9)[:, :4]
    worst = 0.0
    for pos in range(4):
        f_ref = torch.bincount(ref[:, pos], minlength=len(tok)).double() / n
        f_got = torch.bincount(got[:, pos], minlength=len(tok)).double() / n
        p = (f_ref + f_got) / 2
        sd = (2 * p * (1 - p) / n).sqrt() + 1e-3
        worst = max(worst, float(((f_got - f_ref).abs() / sd).max()))
        assert len(set(ref[:, pos].tolist())) > 5  # a real distribution, not a near-deterministic one
    assert worst < 5.0, worst


@pytest.mark.parametrize("scale", [0.1, 1.0, 4.0, 30.0], ids=["flat", "soft", "peaked", "near-greedy"])
def test_pick_draws_what_multinomial_draws(tok, impl, scale):
    """Each picker (the fused one makes the Exp(1) noise itself) returns, for every computed row, the token
    torch.multinomial draws from softmax(logits / T) of the whole batch with the same seed, and leaves the
    generator where multinomial leaves it; finished rows get the pad id and EOS clears `alive`."""
    torch.set_num_threads(1)
    model = build_tiny_model(tok, hidden_size=32, layers=2)
    batch, vocab = 37, model.lm_head.weight.shape[0]
    net = fastgen._fused_net(model, batch, 8)
    pick = net.pick if impl == "cpp" else fastgen._pick
    g = torch.Generator().manual_seed(int(scale * 10))
    for trial in range(60):
        rows = torch.randperm(batch, generator=g)[:int(torch.randint(1, batch + 1, (1,), generator=g))].sort().values
        full = torch.randn(batch, vocab, generator=g) * scale
        temperature = (0.7, 1.0, 1.3)[trial % 3]
        alive = torch.rand(rows.numel(), generator=g) > 0.2
        eos = torch.randint(0, vocab, (2,), generator=g)
        torch.manual_seed(trial)
        ref = torch.multinomial((full / temperature).softmax(-1), 1)[:, 0][rows]
        after_ref = torch.rand(4)
        torch.manual_seed(trial)
        out, still = torch.full((batch, 3), -1), alive.clone()
        tokens, n_alive = pick(full[rows], torch.empty(0), temperature, batch, rows, still, eos, 0, out, 1)
        assert torch.equal(torch.rand(4), after_ref)  # the same random numbers consumed
        assert torch.equal(tokens, torch.where(alive, ref, 0))
        assert torch.equal(out[rows, 1], tokens)
        assert torch.equal(still, alive & ~torch.isin(ref, eos)) and n_alive == int(still.sum())


def test_generate_hf_uses_the_fast_path_with_identical_results(tok, monkeypatch):
    """generate_hf (texts, token ids, lengths, finish reasons, entropies, stop strings) is unchanged by the
    fast path, and REPRO_FASTGEN=0 turns it off."""
    torch.set_num_threads(1)
    model = build_tiny_model(tok, hidden_size=32, layers=2, seed=1, initializer_range=0.3)
    prompts = [build_prompt(p, "plain") for p in PROBLEMS[:10]]
    for sampling in (Sampling(n=3, temperature=1.0, max_new_tokens=20, seed=5),
                     Sampling(n=2, temperature=0.0, max_new_tokens=20),
                     Sampling(n=2, temperature=0.8, top_p=0.9, max_new_tokens=20, seed=1, stop=["7", "ab"])):
        slow = generate_hf(model, tok, prompts, sampling, batch_size=4, return_entropy=True, use_fast=False)
        fast = generate_hf(model, tok, prompts, sampling, batch_size=4, return_entropy=True)
        for rs, rf in zip(slow, fast):
            for a, b in zip(rs, rf):
                assert (a.text, a.token_ids, a.num_tokens, a.finish_reason) == \
                       (b.text, b.token_ids, b.num_tokens, b.finish_reason)
                # the fused C++ forward sums in another order: logits agree to float32 rounding, not bit for bit
                assert a.mean_entropy == pytest.approx(b.mean_entropy, rel=1e-5, abs=1e-6)
    assert fastgen.supports(model)
    monkeypatch.setenv("REPRO_FASTGEN", "0")
    assert not fastgen.supports(model)


@pytest.mark.parametrize("rows", [10, 20], ids=["unpacked", "packed"])
def test_decoding_follows_in_place_weight_updates(tok, rows):
    """After an optimiser step the next decode uses the new weights -- also with fused AdamW, which updates
    parameters without bumping their version counters (a cache keyed on them once served stale rollouts) --
    with and without the fused network's packed weights (batches of 16+)."""
    torch.set_num_threads(1)
    model = build_tiny_model(tok, hidden_size=32, layers=2, seed=1, initializer_range=0.3)
    enc, eos = _enc(tok, PROBLEMS[:rows]), _eos(tok)
    before = _fast(model, tok, enc, eos, 0)
    opt = torch.optim.AdamW(model.parameters(), lr=0.05, fused=True)
    for p in model.parameters():
        p.grad = torch.randn_like(p)
    opt.step()
    after = _fast(model, tok, enc, eos, 0)
    assert torch.equal(after, _hf(model, tok, enc, eos, 0, do_sample=False))
    assert not torch.equal(after, before)  # the update changed what greedy decoding says


def test_path_names_the_network_that_runs(tok, impl):
    model = build_tiny_model(tok, hidden_size=32, layers=2)
    assert fastgen.path(model) == {"cpp": "fused C++", "tensor": "tensor ops"}[impl]
    assert fastgen.path(model.to(torch.float64)) == "tensor ops"  # the fused forward is float32 only


def test_a_failed_build_warns_and_falls_back_to_tensor_ops(tok, monkeypatch, impl):
    import torch.utils.cpp_extension as cpp

    def no_compiler(*a, **k):
        raise RuntimeError("compiler not found")

    monkeypatch.setenv("REPRO_FASTGEN_CPP", "1")
    monkeypatch.setattr(fastgen, "_EXT", None)
    monkeypatch.setattr(cpp, "load", no_compiler)
    model = build_tiny_model(tok, hidden_size=32, layers=2, seed=1, initializer_range=0.3)
    with pytest.warns(UserWarning, match="fused C\\+\\+ forward is unavailable.*compiler not found"):
        assert fastgen.path(model) == "tensor ops"
    enc, eos = _enc(tok, PROBLEMS[:6]), _eos(tok)
    assert torch.equal(_fast(model, tok, enc, eos, 0), _hf(model, tok, enc, eos, 0, do_sample=False))


def test_unsupported_models_fall_back(tok):
    model = build_tiny_model(tok, hidden_size=32, layers=2)
    assert fastgen.supports(model)
    model.config.use_sliding_window = True
    assert not fastgen.supports(model)
    model.config.use_sliding_window = False
    model.config.rope_parameters = {**model.config.rope_parameters, "rope_type": "linear", "factor": 2.0}
    assert not fastgen.supports(model)
    assert not fastgen.supports(torch.nn.Linear(2, 2))
    sharded = build_tiny_model(tok, hidden_size=32, layers=2)
    next(sharded.parameters()).ds_id = 0  # what DeepSpeed ZeRO-3 marks its partitioned parameters with
    assert not fastgen.supports(sharded)  # FSDP2 DTensors: tests/test_engine_distributed.py, on a real shard
