"""One-shot entropy-minimisation training (Gao et al., 2025, arXiv 2505.20282).

    python -m methods.one_shot_em.train --model work/tiny/nano/model --prompt-file sel/selected.json \
        --out work/tiny/one_shot_em/em_s0 --max-steps 40 --eval-steps 0,2,5,10,20,40 \
        --eval-datasets arith_test,arith_hard --data-dir work/tiny/data/arith

Loop (one *optimiser* step = ``grad_accum`` micro-batches of ``micro_batch`` sequences):
  1. sample responses to the one prompt from the current policy, no gradient, at ``sample_temperature``
     / ``top_p`` (HF ``generate``: we need the exact sampled token ids, which a text round-trip
     through a BPE tokenizer would not guarantee);
  2. forward pass with gradient over [prompt; response], align logits with the tokens they predict
     (``next_token_alignment``) and take the token-mean entropy at ``loss_temperature``;
  3. AdamW (weight decay, grad clip), constant learning rate.
Checkpoints are saved and (optionally) evaluated with the math harness at the listed steps.
Outputs: ``<out>/train_log.jsonl`` (per optimiser step), ``<out>/checkpoints/step_<k>/``,
``<out>/metrics.json`` (rows: loss per step, + eval metrics per evaluated step).
"""
from __future__ import annotations

import json
import math
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

__all__ = ["EMArgs", "train", "main", "load_prompt"]


@dataclass
class EMArgs:
    """One-shot entropy minimisation (EM) on a single prompt."""

    model: str  # path or hub id of the model to start from
    out: str  # run directory (checkpoints/, train_log.jsonl, metrics.json)
    prompt: str | None = None  # the problem text (the fixed one-shot prompt); or use --prompt-file
    prompt_file: str | None = None  # JSON written by methods.one_shot_em.select (key "problem")
    template: str = "plain"  # prompt template of benchmarks.math.prompts (plain | qwen25-math-cot)
    sample_temperature: float = 0.5  # T_s: rollout temperature (paper 0.5)
    top_p: float = 0.95  # rollout nucleus (paper 0.95)
    loss_temperature: float = 0.5  # T inside the entropy loss (paper 0.5)
    lr: float = 2e-5  # constant AdamW learning rate (paper 2e-5)
    weight_decay: float = 0.01  # AdamW weight decay (paper 0.01)
    grad_clip: float = 1.0  # max global grad norm (paper 1.0)
    micro_batch: int = 8  # sequences per forward/backward
    grad_accum: int = 8  # micro-batches per optimiser step (effective batch = micro_batch * grad_accum)
    max_steps: int = 10  # optimiser steps (paper: best near 10)
    max_new_tokens: int = 512  # response length cap (paper 512)
    save_steps: list[int] = field(default_factory=list)  # optimiser steps whose checkpoint is saved (0 = the start)
    eval_steps: list[int] = field(default_factory=list)  # steps evaluated with the math harness (subset of 0..max_steps)
    eval_datasets: list[str] = field(default_factory=list)  # dataset names for the evaluation (empty = no eval)
    data_dir: str | None = None  # local directory holding <name>.jsonl eval files
    eval_protocol: str = "tiny"  # benchmarks.math.evaluate protocol
    eval_limit: int | None = None  # evaluate on the first N problems per dataset (None = all)
    eval_batch_size: int = 64  # prompts per generate() call during evaluation
    eval_max_new_tokens: int | None = None  # override the protocol's generation budget (None = protocol's)
    eval_n_samples: int | None = None  # override n of the protocol's sampled decode (None = protocol's)
    bf16: bool = False  # bfloat16 weights/autocast (GPU tier)
    gradient_checkpointing: bool = False  # activation checkpointing (large models)
    device: str = "auto"  # auto | cpu | cuda
    seed: int = 0  # seed for sampling and everything else
    threads: int = 1  # torch CPU threads
    paper: str = "one_shot_em"  # result rows: paper
    method: str = "one_shot_em"  # result rows: method
    model_name: str = "nano"  # result rows: model
    dry_run: bool = False  # validate the config and print the plan; load nothing

    def check(self) -> "EMArgs":
        """Raise ValueError naming the offending field."""
        if (self.prompt is None) == (self.prompt_file is None):
            raise ValueError("EMArgs: give exactly one of prompt / prompt_file")
        for name in ("sample_temperature", "loss_temperature", "lr"):
            if getattr(self, name) <= 0:
                raise ValueError(f"EMArgs.{name} must be > 0, got {getattr(self, name)}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"EMArgs.top_p must be in (0, 1], got {self.top_p}")
        for name in ("micro_batch", "grad_accum", "max_new_tokens"):
            if getattr(self, name) < 1:
                raise ValueError(f"EMArgs.{name} must be >= 1, got {getattr(self, name)}")
        if self.max_steps < 0:
            raise ValueError(f"EMArgs.max_steps must be >= 0, got {self.max_steps}")
        for name in ("save_steps", "eval_steps"):
            bad = [s for s in getattr(self, name) if not 0 <= s <= self.max_steps]
            if bad:
                raise ValueError(f"EMArgs.{name} has steps {bad} outside 0..max_steps={self.max_steps}")
        if self.eval_steps and self.eval_datasets and not self.data_dir:
            raise ValueError("EMArgs.data_dir is required when eval_datasets is set")
        return self


def load_prompt(args: EMArgs) -> str:
    """The problem text: --prompt, or the "problem" of --prompt-file (JSON object)."""
    if args.prompt is not None:
        return args.prompt
    path = Path(args.prompt_file)
    try:
        obj = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: cannot read the selected prompt ({e})") from e
    if "problem" not in obj:
        raise ValueError(f"{path}: missing key 'problem'")
    return obj["problem"]


def _seed_all(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def _sample_batch(model, tokenizer, prompt_text: str, n: int, args: EMArgs, device):
    """n responses to one prompt, no gradient. Returns (input_ids (n, L), attention_mask, response_mask)."""
    import torch

    from methods.one_shot_em.loss import response_mask_from_lengths

    enc = tokenizer(prompt_text, return_tensors="pt", add_special_tokens=False)
    prompt_ids = enc["input_ids"].to(device).expand(n, -1)
    p_len = prompt_ids.shape[1]
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    was_training = model.training
    model.eval()
    with torch.no_grad():
        seqs = model.generate(prompt_ids, attention_mask=torch.ones_like(prompt_ids), do_sample=True,
                              temperature=args.sample_temperature, top_p=args.top_p, top_k=0,
                              max_new_tokens=args.max_new_tokens, pad_token_id=pad_id,
                              eos_token_id=tokenizer.eos_token_id)
    model.train(was_training)
    gen = seqs[:, p_len:]
    # a response ends at (and includes) its first EOS; everything after is padding
    if tokenizer.eos_token_id is not None and gen.shape[1] > 0:
        is_eos = gen == tokenizer.eos_token_id
        first = torch.where(is_eos.any(1), is_eos.float().argmax(1) + 1, torch.full_like(is_eos[:, 0], gen.shape[1], dtype=torch.long))
    else:
        first = torch.full((n,), gen.shape[1], dtype=torch.long, device=device)
    resp_mask = response_mask_from_lengths(torch.full((n,), p_len, device=device), first, seqs.shape[1]).to(device)
    attn = torch.ones_like(seqs)
    attn[:, p_len:] = resp_mask[:, p_len:]
    return seqs, attn, resp_mask


def _evaluate(model, tokenizer, args: EMArgs, step: int, datasets) -> tuple[list[dict], list[dict]]:
    from benchmarks.math.evaluate import evaluate_model
    from repro.results import make_row

    metrics, samples = evaluate_model(model, tokenizer, datasets, protocol=args.eval_protocol,
                                      template=args.template, seed=args.seed, batch_size=args.eval_batch_size,
                                      max_new_tokens=args.eval_max_new_tokens, n_samples=args.eval_n_samples,
                                      grade_workers=0)
    rows = [make_row(args.paper, args.method, args.model_name, ds, args.seed, step, m, float(v))
            for ds, ms in metrics.items() if not ds.startswith("_") for m, v in ms.items()
            if isinstance(v, (int, float)) and math.isfinite(float(v))]
    for s in samples:
        s["step"] = step
    return rows, samples


def train(args: EMArgs) -> Path:
    """Run EM; return the path of metrics.json."""
    args.check()
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from benchmarks.math.prompts import build_prompt
    from methods.one_shot_em.loss import entropy_loss, next_token_alignment
    from repro.io import write_jsonl
    from repro.progress import progress
    from repro.provenance import utc_now
    from repro.results import make_row, write_run

    started = utc_now()
    torch.set_num_threads(args.threads)
    _seed_all(args.seed)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    dtype = torch.bfloat16 if args.bf16 else torch.float32
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=dtype).to(device)
    if args.gradient_checkpointing:
        model.gradient_checkpointing_enable()
    model.train()
    problem = load_prompt(args)
    prompt_text = build_prompt(problem, args.template, tokenizer)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=args.lr,
                            weight_decay=args.weight_decay)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    datasets = {}
    if args.eval_steps and args.eval_datasets:
        from benchmarks.math.datasets import load_problems

        datasets = {name: load_problems(name, source="local", local_dir=args.data_dir, limit=args.eval_limit)
                    for name in args.eval_datasets}
    rows, all_samples, log = [], [], []

    def checkpoint(step: int) -> None:
        if step in args.save_steps:
            model.save_pretrained(out / "checkpoints" / f"step_{step}")
            tokenizer.save_pretrained(out / "checkpoints" / f"step_{step}")
        if step in args.eval_steps and datasets:
            model.eval()
            r, s = _evaluate(model, tokenizer, args, step, datasets)
            model.train()
            rows.extend(r)
            all_samples.extend(s)

    checkpoint(0)
    for step in progress(range(1, args.max_steps + 1), desc="one-shot EM steps", total=args.max_steps):
        t0 = time.monotonic()
        opt.zero_grad(set_to_none=True)
        losses, n_tokens = [], 0
        for micro in range(args.grad_accum):
            torch.manual_seed(args.seed * 1_000_003 + step * 1_009 + micro)  # reproducible rollouts
            seqs, attn, resp = _sample_batch(model, tokenizer, prompt_text, args.micro_batch, args, device)
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=args.bf16):
                logits = model(input_ids=seqs, attention_mask=attn).logits
            al_logits, al_mask = next_token_alignment(logits, resp)
            loss = entropy_loss(al_logits, al_mask, args.loss_temperature)
            (loss / args.grad_accum).backward()
            losses.append(loss.item())
            n_tokens += int(resp.sum())
        gnorm = torch.nn.utils.clip_grad_norm_(model.parameters(), args.grad_clip)
        opt.step()
        rec = {"step": step, "loss": sum(losses) / len(losses), "grad_norm": float(gnorm),
               "response_tokens": n_tokens / (args.micro_batch * args.grad_accum),
               "tokens_per_s": n_tokens / max(time.monotonic() - t0, 1e-9)}
        log.append(rec)
        rows.append(make_row(args.paper, args.method, args.model_name, "train", args.seed, step, "loss", rec["loss"]))
        rows.append(make_row(args.paper, args.method, args.model_name, "train", args.seed, step,
                             "response_tokens", rec["response_tokens"]))
        if not math.isfinite(rec["loss"]):
            raise FloatingPointError(f"non-finite EM loss at step {step}")
        checkpoint(step)
    write_jsonl(out / "train_log.jsonl", log)
    if all_samples:
        write_jsonl(out / "samples.jsonl", all_samples)
    return write_run(out, rows, config=asdict(args), seed=args.seed, started=started)


def main(argv=None) -> None:
    from repro.cli import parse_dataclass

    args = parse_dataclass(EMArgs, argv).check()
    if args.dry_run:
        eff = args.micro_batch * args.grad_accum
        print(json.dumps({"plan": "one-shot EM", "effective_batch": eff, **asdict(args)}, indent=1))
        return
    print(f"wrote {train(args)}")


if __name__ == "__main__":
    main()
