"""One-shot EM rollouts through the math harness, and the accelerate training loop on CPU.

* sample_rollouts rebuilds (prompt; response) tensors from the harness's Completion.token_ids, and a
  response ends at and includes its first EOS exactly as a direct ``model.generate`` call gives it;
* the Accelerator loop (gradient accumulation, clipping, AdamW) reproduces a plain-torch loop's
  loss trajectory and weights for a fixed seed;
* two CPU processes (torch.distributed.run, gloo) train one run: per-rank rollout seeds, losses
  averaged over ranks, one set of outputs written.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from methods.one_shot_em.loss import entropy_loss, next_token_alignment, rollout_tensors
from methods.one_shot_em.train import EMArgs, main as em_main, rollout_seed, sample_rollouts

ROOT = Path(__file__).resolve().parent.parent
PROBLEM = "Compute 12 + 7."


@pytest.fixture(scope="module")
def eos_model_dir(tmp_path_factory):
    """A ~50k-parameter nano Qwen2, briefly fitted to answer with 1-6 random digits and then EOS,
    so sampled responses end at an EOS at varying positions (and some run into the length cap)."""
    from benchmarks.arith.model import NanoModelSpec, build_model
    from benchmarks.arith.tokenizer import build_tokenizer
    from benchmarks.math.prompts import build_prompt

    torch.manual_seed(0)
    tok = build_tokenizer()
    model = build_model(NanoModelSpec(hidden_size=32, num_layers=1, num_heads=2, num_kv_heads=1,
                                      intermediate_size=64, max_positions=128), tok, seed=0)
    prompt = tok(build_prompt(PROBLEM, "plain", tok), add_special_tokens=False)["input_ids"]
    g = torch.Generator().manual_seed(0)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(60):
        rows = []
        for _ in range(16):
            digits = "".join(str(int(d)) for d in torch.randint(0, 10, (int(torch.randint(1, 7, (1,), generator=g)),),
                                                                   generator=g))
            rows.append(prompt + tok(digits, add_special_tokens=False)["input_ids"] + [tok.eos_token_id])
        ids, attn, resp = rollout_tensors(prompt, [r[len(prompt):] for r in rows], tok.pad_token_id)
        labels = ids.masked_fill(resp == 0, -100)
        loss = model(input_ids=ids, attention_mask=attn, labels=labels).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    path = tmp_path_factory.mktemp("eos_model")
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


def _load(path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(path), AutoTokenizer.from_pretrained(path)


def test_rollout_tensors_layout():
    ids, attn, resp = rollout_tensors([5, 6, 7], [[10, 11, 1], [12], []], pad_id=0)
    assert ids.tolist() == [[5, 6, 7, 10, 11, 1], [5, 6, 7, 12, 0, 0], [5, 6, 7, 0, 0, 0]]
    assert resp.tolist() == [[0, 0, 0, 1, 1, 1], [0, 0, 0, 1, 0, 0], [0, 0, 0, 0, 0, 0]]
    assert attn.tolist() == [[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0], [1, 1, 1, 0, 0, 0]]
    # aligned with the loss: position P-1 predicts the first response token
    _, al_mask = next_token_alignment(torch.zeros(3, 6, 2), resp)
    assert al_mask.tolist()[1] == [0, 0, 1, 0, 0]
    with pytest.raises(ValueError, match="prompt"):
        rollout_tensors([], [[1]], 0)


def test_rollouts_are_the_harness_token_ids_and_end_at_first_eos(eos_model_dir):
    from benchmarks.math.generation import Sampling, generate
    from benchmarks.math.prompts import build_prompt

    model, tok = _load(eos_model_dir)
    args = EMArgs(model="m", out="o", prompt=PROBLEM, sample_temperature=1.0, top_p=1.0, max_new_tokens=5)
    prompt_text = build_prompt(PROBLEM, "plain", tok)
    prompt_ids = tok(prompt_text, add_special_tokens=False)["input_ids"]
    p = len(prompt_ids)
    eos = tok.eos_token_id
    n_eos = n_capped = 0
    lengths = set()
    for micro in range(3):
        seed = rollout_seed(0, 1, micro)
        seqs, attn, resp = sample_rollouts(model, tok, prompt_text, 8, args, seed, torch.device("cpu"))
        comps = generate(model, tok, [prompt_text], Sampling(n=8, temperature=1.0, top_p=1.0, max_new_tokens=5,
                                                             seed=seed))[0]
        # the reference: what the loop did before, a direct generate() cut after the first EOS
        torch.manual_seed(seed)
        ref = model.generate(torch.tensor([prompt_ids]).expand(8, -1), attention_mask=torch.ones(8, p, dtype=torch.long),
                             do_sample=True, temperature=1.0, top_p=1.0, top_k=0, max_new_tokens=5,
                             pad_token_id=tok.pad_token_id, eos_token_id=eos)[:, p:]
        assert (seqs[:, :p] == torch.tensor(prompt_ids)).all()
        for i, c in enumerate(comps):
            n = int(resp[i].sum())
            assert seqs[i, p:p + n].tolist() == c.token_ids  # exactly the harness's sampled ids
            assert resp[i, p:p + n].all() and attn[i, :p + n].all() and not attn[i, p + n:].any()
            row = ref[i].tolist()
            first = row.index(eos) + 1 if eos in row else len(row)
            assert c.token_ids == row[:first]  # ends at and includes the first EOS, as before
            if eos in c.token_ids:
                assert c.token_ids.index(eos) == n - 1
                n_eos += 1
            else:
                assert n == 5
                n_capped += 1
            lengths.add(n)
    assert n_eos > 0 and n_capped > 0 and len(lengths) >= 3, (n_eos, n_capped, lengths)


def _plain_torch_losses(model_dir, args: EMArgs):
    """The EM loop written with plain torch (no accelerate): reference for the Accelerator loop."""
    from benchmarks.math.prompts import build_prompt

    torch.manual_seed(args.seed)
    model, tok = _load(model_dir)
    model.train()
    prompt_text = build_prompt(args.prompt, args.template, tok)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    losses, norms = [], []
    for step in range(1, args.max_steps + 1):
        opt.zero_grad()
        step_losses = []
        for micro in range(args.grad_accum):
            seqs, attn, resp = sample_rollouts(model, tok, prompt_text, args.micro_batch, args,
                                               rollout_seed(args.seed, step, micro), torch.device("cpu"))
            logits = model(input_ids=seqs, attention_mask=attn).logits
            loss = entropy_loss(*next_token_alignment(logits, resp), args.loss_temperature)
            (loss / args.grad_accum).backward()
            step_losses.append(loss.item())
        norms.append(float(torch.nn.utils.clip_grad_norm_(model.parameters(), args.grad_clip)))
        opt.step()
        losses.append(sum(step_losses) / len(step_losses))
    return losses, norms, model


def test_accelerate_loop_reproduces_plain_torch_trajectory(eos_model_dir, tmp_path):
    out = tmp_path / "em"
    flags = dict(prompt=PROBLEM, max_steps=4, micro_batch=4, grad_accum=3, max_new_tokens=6, lr=2e-2,
                 sample_temperature=1.0, loss_temperature=0.7, grad_clip=0.5, seed=5)
    em_main(["--model", str(eos_model_dir), "--out", str(out), "--save-steps", "4"]
            + [a for k, v in flags.items() for a in (f"--{k.replace('_', '-')}", str(v))])
    log = [json.loads(x) for x in (out / "train_log.jsonl").read_text().splitlines()]
    got = [r["loss"] for r in log]
    ref, ref_norms, ref_model = _plain_torch_losses(eos_model_dir, EMArgs(model="m", out="o", **flags))
    assert got == pytest.approx(ref, rel=1e-6, abs=1e-9)
    # pre-clipping norms of the accumulated gradient: the loss is divided by grad_accum exactly once
    assert [r["grad_norm"] for r in log] == pytest.approx(ref_norms, rel=1e-5)
    assert got[0] != pytest.approx(got[-1])  # the weights did move
    trained, _ = _load(out / "checkpoints" / "step_4")
    for (name, a), b in zip(ref_model.state_dict().items(), trained.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7, msg=name)


def test_world_size_must_match_the_launch(eos_model_dir, tmp_path):
    with pytest.raises(ValueError, match="world_size"):
        em_main(["--model", str(eos_model_dir), "--out", str(tmp_path / "x"), "--prompt", PROBLEM, "--max-steps", "1",
                 "--world-size", "2"])
    with pytest.raises(ValueError, match="vllm"):
        EMArgs(model="m", out="o", prompt="p", rollout_backend="vllm", world_size=2).check()
    with pytest.raises(ValueError, match="rollout_backend"):
        EMArgs(model="m", out="o", prompt="p", rollout_backend="sglang").check()


def test_two_cpu_processes(eos_model_dir, tmp_path):
    """torch.distributed.run with 2 gloo processes: the accelerate path of a multi-GPU launch."""
    from benchmarks.math.prompts import build_prompt

    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "methods.one_shot_em.train", "--model", str(eos_model_dir), "--out", str(out), "--prompt", PROBLEM,
           "--max-steps", "2", "--micro-batch", "3", "--grad-accum", "2", "--max-new-tokens", "6", "--lr", "1e-2",
           "--sample-temperature", "1.0", "--loss-temperature", "1.0", "--save-steps", "2", "--seed", "7",
           "--world-size", "2", "--device", "cpu"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "MULTI_CPU x 2" in proc.stdout + proc.stderr
    log = [json.loads(x) for x in (out / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2]  # written once, by the main process
    assert (out / "checkpoints" / "step_2" / "model.safetensors").is_file()
    # step 1 runs on the initial weights: its loss is the mean over both ranks' rollouts (rank seeds differ)
    model, tok = _load(eos_model_dir)
    args = EMArgs(model="m", out="o", prompt=PROBLEM, micro_batch=3, max_new_tokens=6, sample_temperature=1.0)
    prompt_text = build_prompt(PROBLEM, "plain", tok)
    per_rank, tokens = [], 0
    with torch.no_grad():
        for rank in (0, 1):
            losses = []
            for micro in (0, 1):
                seqs, attn, resp = sample_rollouts(model, tok, prompt_text, 3, args, rollout_seed(7, 1, micro, rank),
                                                   torch.device("cpu"))
                logits = model(input_ids=seqs, attention_mask=attn).logits
                losses.append(entropy_loss(*next_token_alignment(logits, resp), 1.0).item())
                tokens += int(resp.sum())
            per_rank.append(sum(losses) / 2)
    assert per_rank[0] != pytest.approx(per_rank[1], rel=1e-9)
    assert log[0]["loss"] == pytest.approx(sum(per_rank) / 2, rel=1e-5)
    assert log[0]["response_tokens"] == pytest.approx(tokens / 12)


def test_selection_samples_at_em_rollout_temperature(eos_model_dir, tmp_path, monkeypatch):
    """By default the k selection samples come from EM's rollout distribution (T_s, top_p)."""
    import benchmarks.math.generation as gen
    from methods.one_shot_em.select import SelectArgs, main as select_main

    assert (SelectArgs(model="m", out="o").temperature, SelectArgs(model="m", out="o").top_p) == \
        (EMArgs(model="m", out="o").sample_temperature, EMArgs(model="m", out="o").top_p)
    seen = []
    real = gen.generate

    def recording(model, tokenizer, prompts, sampling, **kw):
        seen.append((sampling.n, sampling.temperature, sampling.top_p))
        return real(model, tokenizer, prompts, sampling, **kw)

    monkeypatch.setattr(gen, "generate", recording)
    data = tmp_path / "d"
    data.mkdir()
    (data / "pool.jsonl").write_text("".join(json.dumps({"id": f"p{i}", "problem": f"Compute {i} + 3.", "answer": None})
                                             + "\n" for i in range(3)))
    out = tmp_path / "sel.json"
    select_main(["--model", str(eos_model_dir), "--out", str(out), "--data-dir", str(data), "--pool", "pool",
                 "--k", "4", "--max-new-tokens", "4"])
    assert seen == [(4, 0.5, 0.95)]
    chosen = json.loads(out.read_text())
    assert (chosen["temperature"], chosen["top_p"], chosen["k"]) == (0.5, 0.95, 4)
    select_main(["--model", str(eos_model_dir), "--out", str(out), "--data-dir", str(data), "--pool", "pool",
                 "--k", "2", "--max-new-tokens", "4", "--temperature", "0.9", "--top-p", "1.0"])
    assert seen[-1] == (2, 0.9, 1.0)
