"""The nano model: a real Qwen2 of the intended size that save/load round-trips exactly."""
from __future__ import annotations

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, Qwen2ForCausalLM

from benchmarks.arith.model import NanoModelSpec, build_model, count_parameters
from benchmarks.arith.tokenizer import build_tokenizer


def test_default_size_and_architecture():
    tok = build_tokenizer()
    model = build_model(NanoModelSpec(), tok)
    assert isinstance(model, Qwen2ForCausalLM)
    assert 500_000 <= count_parameters(model) <= 2_000_000
    assert model.config.vocab_size == len(tok)
    assert model.generation_config.eos_token_id == tok.eos_token_id
    assert model.generation_config.pad_token_id == tok.pad_token_id


def test_same_seed_same_weights_and_bad_shapes_are_named():
    tok = build_tokenizer()
    spec = NanoModelSpec(hidden_size=32, num_layers=1, num_heads=2, num_kv_heads=1, intermediate_size=64)
    a, b = build_model(spec, tok, seed=3), build_model(spec, tok, seed=3)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    try:
        NanoModelSpec(hidden_size=30, num_heads=4).check()
    except ValueError as err:
        assert "hidden_size" in str(err)
    else:
        raise AssertionError("inconsistent shapes were accepted")


def test_save_load_round_trip_gives_identical_logits(tmp_path):
    torch.manual_seed(0)
    tok = build_tokenizer()
    model = build_model(NanoModelSpec(hidden_size=64, num_layers=2, num_heads=4, num_kv_heads=2,
                                      intermediate_size=128), tok, seed=7)
    with torch.no_grad():  # move away from the initialisation so the check covers trained-like weights
        for p in model.parameters():
            p.add_(0.02 * torch.randn_like(p))
    model.eval()
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    loaded_tok = AutoTokenizer.from_pretrained(tmp_path)
    prompts = ["Problem: Compute 12 + 3 × (4 - 5).\nSolution:", "Problem: Compute 7 - 8.\nSolution: 7"]
    enc = loaded_tok(prompts, return_tensors="pt", padding=True)
    with torch.no_grad():
        ref = model(**enc).logits
        got = loaded(**enc).logits
    assert type(loaded) is Qwen2ForCausalLM
    assert torch.equal(ref, got)
    with torch.no_grad():
        out_a = model.generate(**enc, max_new_tokens=12, do_sample=False)
        out_b = loaded.generate(**enc, max_new_tokens=12, do_sample=False)
    assert torch.equal(out_a, out_b)
