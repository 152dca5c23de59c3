"""One-shot entropy-minimisation training (Gao et al., 2025, arXiv 2505.20282).

    python -m methods.one_shot_em.train --model work/tiny/nano/model --prompt-file sel/selected.json \
        --out work/tiny/one_shot_em/em_s0 --max-steps 40 --eval-steps 0,2,5,10,20,40 \
        --eval-datasets arith_test,arith_hard --data-dir work/tiny/data/arith

Multi-GPU (paper tier): the same module under ``accelerate launch``, e.g.

    accelerate launch --config_file config/accelerate/fsdp.yaml --num_processes 8 \
        -m methods.one_shot_em.train ... --world-size 8

Loop (one *optimiser* step = ``grad_accum`` micro-batches of ``micro_batch`` sequences on each of
``world_size`` processes; effective batch = micro_batch * grad_accum * world_size):
  1. sample responses to the one prompt from the current policy, no gradient, at ``sample_temperature``
     / ``top_p`` with the math harness's ``benchmarks.math.generation.generate`` (backend ``hf``, or
     ``vllm`` on one GPU); the tensors are rebuilt from the exact sampled ``Completion.token_ids``
     (a text round-trip through a BPE tokenizer would not guarantee the same ids);
  2. forward pass with gradient over [prompt; response], align logits with the tokens they predict
     (``next_token_alignment``) and take the token-mean entropy at ``loss_temperature``;
  3. AdamW (weight decay, grad clip), constant learning rate.
Gradient accumulation, mixed precision (bf16) and the model/optimizer wrapping (FSDP / DeepSpeed
under ``accelerate launch``; nothing on one CPU process) are ``accelerate.Accelerator``'s. Each
micro-batch's rollouts are seeded by ``rollout_seed(seed, step, micro, rank)``.
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

__all__ = ["EMArgs", "train", "main", "load_prompt", "rollout_seed", "sample_rollouts"]


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
    repetition_penalty: float = 1.0  # rollout repetition penalty (official code 1.15: one-shot-em train.py:144)
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
    # eval_steps that also run the protocol's sampled decodes; the others decode greedily only (None = all).
    # The step curve reads greedy accuracy; the sampled decodes (4/5 of an evaluation's tokens at the tiny
    # tier) are needed only where T = 1 metrics are read: the start and the headline step.
    eval_sampled_steps: list[int] | None = None
    bf16: bool = False  # bfloat16 weights/autocast (GPU tier)
    gradient_checkpointing: bool = False  # activation checkpointing (large models)
    rollout_backend: str = "hf"  # generation backend of the rollouts: hf | vllm (one process, one GPU)
    vllm_gpu_memory_utilization: float = 0.3  # GPU memory share of the vLLM engine (rollout_backend vllm)
    world_size: int = 1  # processes the run expects (accelerate launch --num_processes); checked at start
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
        if self.repetition_penalty <= 0:
            raise ValueError(f"EMArgs.repetition_penalty must be > 0, got {self.repetition_penalty}")
        for name in ("micro_batch", "grad_accum", "max_new_tokens"):
            if getattr(self, name) < 1:
                raise ValueError(f"EMArgs.{name} must be >= 1, got {getattr(self, name)}")
        if self.max_steps < 0:
            raise ValueError(f"EMArgs.max_steps must be >= 0, got {self.max_steps}")
        if self.eval_sampled_steps is not None:
            bad = sorted(set(self.eval_sampled_steps) - set(self.eval_steps))
            if bad:
                raise ValueError(f"EMArgs.eval_sampled_steps has steps {bad} that are not in eval_steps {self.eval_steps}")
        for name in ("save_steps", "eval_steps"):
            bad = [s for s in getattr(self, name) if not 0 <= s <= self.max_steps]
            if bad:
                raise ValueError(f"EMArgs.{name} has steps {bad} outside 0..max_steps={self.max_steps}")
        if self.eval_steps and self.eval_datasets and not self.data_dir:
            raise ValueError("EMArgs.data_dir is required when eval_datasets is set")
        if self.rollout_backend not in ("hf", "vllm"):
            raise ValueError(f"EMArgs.rollout_backend must be hf or vllm, got {self.rollout_backend!r}")
        if self.world_size < 1:
            raise ValueError(f"EMArgs.world_size must be >= 1, got {self.world_size}")
        if self.rollout_backend == "vllm" and self.world_size != 1:
            raise ValueError("EMArgs.rollout_backend 'vllm' runs one engine in one process (world_size 1); "
                             "multi-process runs sample with 'hf'")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"EMArgs.device must be auto, cpu or cuda, got {self.device!r}")
        return self


def _prompt_record(args: EMArgs) -> dict:
    """--prompt as {"problem": ...}, or the JSON object of --prompt-file (written by methods.one_shot_em.select)."""
    if args.prompt is not None:
        return {"problem": args.prompt}
    path = Path(args.prompt_file)
    try:
        obj = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: cannot read the selected prompt ({e})") from e
    if not isinstance(obj, dict) or "problem" not in obj:
        raise ValueError(f"{path}: missing key 'problem'")
    return obj


def load_prompt(args: EMArgs) -> str:
    """The problem text: --prompt, or the "problem" of --prompt-file (JSON object)."""
    return _prompt_record(args)["problem"]


# selection file key -> table metric (dataset "prompt", step 0): where the prompt stood in the variance ranking, and
# the base model's careful-marker share on it and its selection samples' careful share and per-style accuracy
# (arith testbed only)
_SELECTION_METRICS = {"rank": "selection_rank", "score": "selection_score", "accuracy": "selection_accuracy",
                      "p_careful_marker": "selection_p_careful_marker",
                      "careful_share_samples": "selection_careful_share_samples",
                      "acc_careful_samples": "selection_acc_careful", "acc_quick_samples": "selection_acc_quick"}


def prompt_metrics(args: EMArgs) -> dict[str, float]:
    """The prompt's selection rank, score p(1 - p), accuracy p and careful-marker share, for the rows of a run whose
    prompt file has them (a fixed --prompt has none)."""
    obj = _prompt_record(args)
    return {m: float(obj[k]) for k, m in _SELECTION_METRICS.items() if isinstance(obj.get(k), (int, float))}


def _seed_all(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def rollout_seed(seed: int, step: int, micro: int, rank: int = 0) -> int:
    """Sampling seed of one micro-batch's rollouts (optimiser ``step``, micro-batch ``micro``, process ``rank``).

    Reproducible for a given (seed, step, micro, rank); ranks sample different responses.
    """
    return seed * 1_000_003 + step * 1_009 + micro + rank * 7_919_999


def sample_rollouts(model, tokenizer, prompt_text: str, n: int, args: EMArgs, seed: int, device):
    """n responses to one prompt, no gradient, via the math harness's ``generate``.

    ``model`` is the policy (backend hf) or a ``vllm.LLM`` holding its current weights (backend vllm).
    Returns (input_ids (n, L), attention_mask, response_mask), rebuilt from the prompt's ids and the
    exact sampled ``Completion.token_ids`` (each response ends at and includes its first EOS).
    """
    from benchmarks.math.generation import Sampling, generate
    from methods.one_shot_em.loss import rollout_tensors

    sampling = Sampling(n=n, temperature=args.sample_temperature, top_p=args.top_p,
                        max_new_tokens=args.max_new_tokens, seed=seed, repetition_penalty=args.repetition_penalty)
    completions = generate(model, tokenizer, [prompt_text], sampling, backend=args.rollout_backend, batch_size=1)[0]
    prompt_ids = tokenizer(prompt_text, add_special_tokens=False)["input_ids"]
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    seqs, attn, resp = rollout_tensors(prompt_ids, [c.token_ids for c in completions], pad_id)
    return seqs.to(device), attn.to(device), resp.to(device)


def _generation_module(accelerator, model):
    """The policy module that generates (rollouts, evaluation) inside a possibly sharded run.

    Under FSDP2 every decode step is a collective and ranks sample responses of different lengths:
    transformers' ``generate`` then keeps the ranks in step (``synced_gpus``) for modules it knows
    are FSDP-managed, a flag that accelerate's ``fully_shard`` does not set, so it is set here.
    DeepSpeed ZeRO-3 is detected by transformers itself.
    """
    policy = accelerator.unwrap_model(model)
    if accelerator.is_fsdp2 and accelerator.num_processes > 1:
        policy._is_fsdp_managed_module = True
    return policy


def _sync_vllm(llm, model) -> None:
    """Load the policy's current weights into the vLLM engine (as TRL's colocate mode does)."""
    llm.llm_engine.model_executor.driver_worker.model_runner.model.load_weights(
        (name, p.data) for name, p in model.named_parameters())
    llm.reset_prefix_cache()


def _evaluate(model, tokenizer, args: EMArgs, step: int, datasets) -> tuple[list[dict], list[dict]]:
    from benchmarks.math.evaluate import evaluate_model, get_protocol
    from repro.results import make_row

    protocol = get_protocol(args.eval_protocol, args.eval_n_samples)
    if args.eval_sampled_steps is not None and step not in args.eval_sampled_steps:
        protocol = protocol.greedy_only()
    metrics, samples = evaluate_model(model, tokenizer, datasets, protocol=protocol,
                                      template=args.template, seed=args.seed, batch_size=args.eval_batch_size,
                                      max_new_tokens=args.eval_max_new_tokens, grade_workers=0)
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
    from accelerate import Accelerator
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
    if args.device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("EMArgs.device is cuda, but no CUDA device is visible")
    # gradient accumulation, bf16 autocast and the FSDP / DeepSpeed wrapping (under accelerate launch)
    accelerator = Accelerator(gradient_accumulation_steps=args.grad_accum,
                              mixed_precision="bf16" if args.bf16 else "no", cpu=args.device == "cpu")
    if accelerator.num_processes != args.world_size:
        raise ValueError(f"EMArgs.world_size is {args.world_size} but {accelerator.num_processes} process(es) were "
                         "launched: pass --world-size equal to accelerate launch --num_processes")
    is_main = accelerator.is_main_process
    accelerator.print(f"accelerate: {accelerator.distributed_type.value} x {accelerator.num_processes} on "
                      f"{accelerator.device}, mixed precision {accelerator.mixed_precision}, "
                      f"effective batch {args.micro_batch * args.grad_accum * args.world_size}")
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    # float32 master weights; with bf16 the forward runs in bf16 (accelerate's autocast / FSDP mixed precision)
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32)
    if args.gradient_checkpointing:
        model.gradient_checkpointing_enable()
    model.train()
    problem = load_prompt(args)
    prompt_text = build_prompt(problem, args.template, tokenizer)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=args.lr,
                            weight_decay=args.weight_decay)
    if accelerator.distributed_type.value == "FSDP" and not accelerator.is_fsdp2:
        raise ValueError("one-shot EM under FSDP needs fsdp_version: 2 in the accelerate config "
                         "(generation from FSDP1-wrapped modules is not supported)")
    model, opt = accelerator.prepare(model, opt)
    device = accelerator.device
    llm = None
    if args.rollout_backend == "vllm":
        from benchmarks.math.generation import load_vllm

        llm = load_vllm(args.model, seed=args.seed, dtype="bfloat16" if args.bf16 else "auto",
                        gpu_memory_utilization=args.vllm_gpu_memory_utilization)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    datasets = {}
    if args.eval_steps and args.eval_datasets:
        from benchmarks.math.datasets import load_problems

        datasets = {name: load_problems(name, source="local", local_dir=args.data_dir, limit=args.eval_limit)
                    for name in args.eval_datasets}
    rows, all_samples, log = [], [], []
    rows += [make_row(args.paper, args.method, args.model_name, "prompt", args.seed, 0, m, v)
             for m, v in prompt_metrics(args).items()]

    def checkpoint(step: int) -> None:
        if step in args.save_steps:
            state = accelerator.get_state_dict(model)  # the full state dict, gathered from shards if needed
            if is_main:
                accelerator.unwrap_model(model).save_pretrained(out / "checkpoints" / f"step_{step}", state_dict=state)
                tokenizer.save_pretrained(out / "checkpoints" / f"step_{step}")
            accelerator.wait_for_everyone()
        if step in args.eval_steps and datasets:
            policy = _generation_module(accelerator, model)  # every process evaluates (sharded forwards need all ranks)
            policy.eval()
            r, s = _evaluate(policy, tokenizer, args, step, datasets)
            policy.train()
            rows.extend(r)
            all_samples.extend(s)

    checkpoint(0)
    world = accelerator.num_processes
    for step in progress(range(1, args.max_steps + 1), desc="one-shot EM steps", total=args.max_steps):
        t0 = time.monotonic()
        losses, n_tokens, gnorm = [], 0, None
        for micro in range(args.grad_accum):
            with accelerator.accumulate(model):
                seed = rollout_seed(args.seed, step, micro, accelerator.process_index)
                sampler = llm if llm is not None else _generation_module(accelerator, model)
                seqs, attn, resp = sample_rollouts(sampler, tokenizer, prompt_text, args.micro_batch, args, seed, device)
                logits = model(input_ids=seqs, attention_mask=attn).logits
                al_logits, al_mask = next_token_alignment(logits, resp)
                loss = entropy_loss(al_logits, al_mask, args.loss_temperature)
                accelerator.backward(loss)  # divides by grad_accum
                if accelerator.sync_gradients:
                    gnorm = accelerator.clip_grad_norm_(model.parameters(), args.grad_clip)
                opt.step()  # a no-op until the last micro-batch of the optimiser step
                opt.zero_grad(set_to_none=True)
            losses.append(loss.item())
            n_tokens += int(resp.sum())
        if not accelerator.sync_gradients:
            raise RuntimeError(f"internal: no optimiser step after {args.grad_accum} micro-batches at step {step}")
        if llm is not None:
            _sync_vllm(llm, accelerator.unwrap_model(model))
        totals = accelerator.reduce(torch.tensor([sum(losses) / len(losses), float(n_tokens)], dtype=torch.float64,
                                                 device=device), "sum").tolist()
        rec = {"step": step, "loss": totals[0] / world, "grad_norm": _scalar(gnorm),
               "response_tokens": totals[1] / (args.micro_batch * args.grad_accum * world),
               "tokens_per_s": totals[1] / max(time.monotonic() - t0, 1e-9)}
        log.append(rec)
        rows.append(make_row(args.paper, args.method, args.model_name, "train", args.seed, step, "loss", rec["loss"]))
        rows.append(make_row(args.paper, args.method, args.model_name, "train", args.seed, step,
                             "response_tokens", rec["response_tokens"]))
        if not math.isfinite(rec["loss"]):
            raise FloatingPointError(f"non-finite EM loss at step {step}")
        checkpoint(step)
    metrics = out / "metrics.json"
    if is_main:
        write_jsonl(out / "train_log.jsonl", log)
        if all_samples:
            write_jsonl(out / "samples.jsonl", all_samples)
        metrics = write_run(out, rows, config=asdict(args), seed=args.seed, started=started)
    accelerator.wait_for_everyone()
    return metrics


def _scalar(x) -> float:
    """A grad norm as a float (a DTensor under FSDP2 is gathered first; None -> nan)."""
    if x is None:
        return float("nan")
    return float(x.full_tensor() if hasattr(x, "full_tensor") else x)


def main(argv=None) -> None:
    from repro.cli import parse_dataclass

    args = parse_dataclass(EMArgs, argv).check()
    if args.dry_run:
        eff = args.micro_batch * args.grad_accum * args.world_size
        print(json.dumps({"plan": "one-shot EM", "effective_batch": eff, **asdict(args)}, indent=1))
        return
    print(f"wrote {train(args)}")


if __name__ == "__main__":
    main()
