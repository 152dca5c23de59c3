"""Generic RL training entry point on TRL's GRPOTrainer (policy loss and reward picked by name).

    python -m methods.engine.train_rl --model work/tiny/nano/model \\
        --train-data work/tiny/data/arith/arith_rl_train.jsonl --policy-loss kl_cov --reward verifiable \\
        --val-data work/tiny/data/arith/arith_test.jsonl --eval-datasets arith_test,arith_hard \\
        --eval-data-dir work/tiny/data/arith --out work/tiny/entropy_mechanism/kl_cov/seed0

One *rollout step* samples ``num_generations`` responses for each of ``prompts_per_step`` prompts, then takes
``ppo_minibatches`` optimiser steps over them (each on 1/ppo_minibatches of the responses, accumulated over
micro-batches of ``micro_batch_size`` responses). Writes ``train_log.jsonl`` (one row per optimiser step:
entropy, cov_mean, frac_selected, clip_frac, logratio_abs_mean, reward, response length; ``val/acc`` rows every
``val_every`` optimiser steps), ``metrics.json`` (repro.results rows: per-step curves, entropy_initial /
entropy_final, final evaluation) and, if ``save_model``, the trained model under ``<out>/model``.
"""
from __future__ import annotations

import json
import math
import os
import random
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from repro.cli import parse_dataclass
from repro.io import iter_jsonl


@dataclass
class TrainRLArgs:
    """RL fine-tuning with a pluggable policy loss and reward (TRL GRPOTrainer)."""

    model: str = "work/tiny/nano/model"  # model dir or hub id (tokenizer saved alongside)
    train_data: str = "work/tiny/data/arith/arith_rl_train.jsonl"  # JSONL (id, problem, answer) or hub:<id>[:split]
    train_limit: int | None = None  # use only the first N training problems (after train_filter)
    train_filter: str | None = None  # keep training rows whose numeric column passes e.g. "num_operands<=3"
    template: str = "plain"  # prompt template (benchmarks.math.prompts): plain | qwen25-math-cot
    out: str = "work/tiny/entropy_mechanism/run"  # output directory
    policy_loss: str = "grpo"  # grpo | clip_higher | clip_cov | kl_cov (methods.entropy_mechanism.losses.LOSSES)
    eps_low: float | None = None  # PPO clip lower range (None: the loss's default)
    eps_high: float | None = None  # PPO clip upper range (None: the loss's default)
    clip_ratio: float | None = None  # Clip-Cov fraction of tokens to detach (None: 2e-4)
    cov_lb: float | None = None  # Clip-Cov lower covariance bound (None: 1.0)
    cov_ub: float | None = None  # Clip-Cov upper covariance bound (None: 5.0)
    k_ratio: float | None = None  # KL-Cov fraction of top-cov tokens penalised (None: 2e-3)
    kl_coef: float | None = None  # KL-Cov penalty coefficient (None: 1.0)
    importance_sampling_level: str = "token"  # token | sequence (GSPO-style ratio; grpo/clip_higher only)
    reward: str = "verifiable"  # reward name in methods.engine.rewards (verifiable, semantic_entropy, ...)
    reward_kwargs: str = "{}"  # JSON dict of options for the reward factory
    num_generations: int = 8  # responses per prompt (the GRPO group)
    prompts_per_step: int = 8  # prompts per rollout step
    ppo_minibatches: int = 4  # optimiser steps per rollout step (mini-batches of the rollout)
    micro_batch_size: int = 16  # responses per forward/backward on one device
    rollout_steps: int = 20  # number of rollout steps (optimiser steps = rollout_steps * ppo_minibatches)
    learning_rate: float = 1e-4  # constant learning rate (AdamW)
    weight_decay: float = 0.0  # AdamW weight decay
    adam_epsilon: float = 1e-8  # AdamW epsilon (larger = parameters with tiny gradients move less)
    max_grad_norm: float = 1.0  # gradient clipping
    warmup_steps: int = 0  # linear warm-up optimiser steps
    temperature: float = 1.0  # rollout sampling temperature (entropy is measured at it)
    top_p: float = 1.0  # rollout nucleus sampling
    max_completion_length: int = 64  # max response tokens
    val_data: str | None = None  # JSONL of held-out problems for validation accuracy (None: no validation)
    val_limit: int = 64  # validation problems (first N)
    val_every: int = 4  # validate every N optimiser steps (and at start and end)
    eval_datasets: list[str] | None = None  # final evaluation datasets (names of <eval_data_dir>/<name>.jsonl)
    eval_data_dir: str | None = None  # directory of the final evaluation datasets
    eval_protocol: str = "tiny"  # benchmarks.math.evaluate protocol for the final evaluation
    eval_limit: int | None = None  # evaluate only the first N problems of each dataset
    eval_max_new_tokens: int | None = None  # response budget of the final evaluation (None: the protocol's)
    eval_n_samples: int | None = None  # samples of the protocol's sampled decodes (None: the protocol's, e.g. 8)
    eval_batch_size: int = 64  # generation batch size of validation / evaluation
    save_model: bool = False  # save the trained model and tokenizer under <out>/model
    use_vllm: bool = False  # vLLM colocated rollouts (GPU tiers)
    vllm_gpu_memory_utilization: float = 0.3  # vLLM colocate memory share
    vllm_tensor_parallel_size: int = 1  # GPUs per colocated vLLM engine (32B: 2, as the official runs; divides world)
    bf16: bool = False  # bf16 training (GPU tiers)
    gradient_checkpointing: bool = False  # activation checkpointing (large models)
    paper: str = "entropy_mechanism"  # results: paper column
    method: str | None = None  # results: method column (None: policy_loss)
    model_name: str = "nano"  # results: model column
    seed: int = 0  # seed of everything (data order, sampling, Clip-Cov draws)
    threads: int = 1  # torch CPU threads
    dry_run: bool = False  # validate the config, print the resolved TRL config, do not load or train


# ----------------------------------------------------------------------------------------------------------------
def loss_kwargs(args: TrainRLArgs) -> dict[str, float]:
    """The non-None loss options that apply to ``args.policy_loss`` (errors name the offending flag)."""
    from methods.entropy_mechanism.losses import LOSSES

    if args.policy_loss not in LOSSES:
        raise ValueError(f"--policy-loss: unknown loss {args.policy_loss!r}; choose one of {sorted(LOSSES)}")
    accepted = LOSSES[args.policy_loss][1]
    out = {}
    for key in ("eps_low", "eps_high", "clip_ratio", "cov_lb", "cov_ub", "k_ratio", "kl_coef"):
        val = getattr(args, key)
        if val is None:
            continue
        if key not in accepted:
            raise ValueError(f"--{key.replace('_', '-')} does not apply to --policy-loss {args.policy_loss} "
                             f"(its options: {sorted(accepted)})")
        out[key] = float(val)
    return out


def batch_geometry(args: TrainRLArgs, world_size: int = 1) -> dict[str, int]:
    """TRL batch settings from the rollout description; ValueError names the field that does not divide."""
    for f in ("num_generations", "prompts_per_step", "ppo_minibatches", "micro_batch_size", "rollout_steps"):
        if getattr(args, f) < 1:
            raise ValueError(f"--{f.replace('_', '-')} must be >= 1, got {getattr(args, f)}")
    rollout = args.prompts_per_step * args.num_generations
    if rollout % args.ppo_minibatches:
        raise ValueError(f"prompts_per_step*num_generations ({rollout}) must be divisible by "
                         f"ppo_minibatches ({args.ppo_minibatches})")
    minibatch = rollout // args.ppo_minibatches
    per_device = minibatch // world_size if minibatch % world_size == 0 else 0
    if not per_device or per_device % args.micro_batch_size:
        raise ValueError(f"a PPO mini-batch of {minibatch} responses over {world_size} device(s) must split into "
                         f"micro-batches of micro_batch_size={args.micro_batch_size}")
    tp = args.vllm_tensor_parallel_size
    if tp < 1 or world_size % tp:
        raise ValueError(f"--vllm-tensor-parallel-size {tp} must be >= 1 and divide the {world_size} process(es)")
    ga = per_device // args.micro_batch_size
    return dict(per_device_train_batch_size=args.micro_batch_size, gradient_accumulation_steps=ga,
                steps_per_generation=ga * args.ppo_minibatches, generation_batch_size=rollout,
                max_steps=args.rollout_steps * args.ppo_minibatches, minibatch=minibatch)


def grpo_settings(args: TrainRLArgs, world_size: int = 1) -> dict[str, Any]:
    """The keyword arguments of TRL's ``GRPOConfig`` for this run (building it needs the target hardware)."""
    geo = batch_geometry(args, world_size)
    use_cpu = not args.use_vllm and not args.bf16
    return dict(
        output_dir=str(Path(args.out) / "trl"), seed=args.seed, data_seed=args.seed, use_cpu=use_cpu,
        bf16=args.bf16, report_to=[], logging_steps=1, save_strategy="no", disable_tqdm=True,
        per_device_train_batch_size=geo["per_device_train_batch_size"],
        gradient_accumulation_steps=geo["gradient_accumulation_steps"],
        steps_per_generation=geo["steps_per_generation"], num_generations=args.num_generations,
        max_steps=geo["max_steps"], num_iterations=1, learning_rate=args.learning_rate,
        lr_scheduler_type="constant_with_warmup" if args.warmup_steps else "constant",
        warmup_steps=args.warmup_steps, weight_decay=args.weight_decay, adam_epsilon=args.adam_epsilon, max_grad_norm=args.max_grad_norm,
        temperature=args.temperature, top_p=args.top_p, max_completion_length=args.max_completion_length,
        beta=0.0, loss_type="bnpo", scale_rewards="group", importance_sampling_level=args.importance_sampling_level,
        mask_truncated_completions=False, use_vllm=args.use_vllm, vllm_mode="colocate",
        vllm_gpu_memory_utilization=args.vllm_gpu_memory_utilization,
        vllm_tensor_parallel_size=args.vllm_tensor_parallel_size,
        vllm_importance_sampling_correction=False, gradient_checkpointing=args.gradient_checkpointing,
        shuffle_dataset=True, remove_unused_columns=False,
    )


def grpo_config(args: TrainRLArgs, world_size: int = 1):
    from trl import GRPOConfig

    return GRPOConfig(**grpo_settings(args, world_size))


# ----------------------------------------------------------------------------------------------------------------
def read_jsonl(path: str | os.PathLike, limit: int | None = None) -> list[dict]:
    """Rows of a JSONL file; errors name the file and line."""
    rows = []
    with open(path) as f:
        for i, row in iter_jsonl(f, str(path)):
            for key in ("problem", "answer"):
                if key not in row:
                    raise ValueError(f"{path}:{i}: missing field {key!r}")
            rows.append(row)
            if limit is not None and len(rows) >= limit:
                break
    if not rows:
        raise ValueError(f"{path}: no rows")
    return rows


_OPS = {"<=": lambda a, b: a <= b, ">=": lambda a, b: a >= b, "==": lambda a, b: a == b,
        "<": lambda a, b: a < b, ">": lambda a, b: a > b}


def filter_rows(rows: list[dict], expr: str | None, where: str = "--train-filter") -> list[dict]:
    """Rows whose numeric column satisfies ``expr`` = "<column><op><number>" (op: <=, >=, ==, <, >)."""
    if not expr:
        return rows
    for op in ("<=", ">=", "==", "<", ">"):
        if op in expr:
            col, _, val = (x.strip() for x in expr.partition(op))
            break
    else:
        raise ValueError(f"{where} {expr!r}: expected <column><op><number> with op in <=, >=, ==, <, >")
    try:
        bound = float(val)
    except ValueError:
        raise ValueError(f"{where} {expr!r}: {val!r} is not a number") from None
    missing = [i for i, r in enumerate(rows) if col not in r]
    if missing:
        raise ValueError(f"{where} {expr!r}: row {missing[0]} has no column {col!r}")
    kept = [r for r in rows if _OPS[op](float(r[col]), bound)]
    if not kept:
        raise ValueError(f"{where} {expr!r}: no training row passes the filter")
    return kept


def load_rows(spec: str, limit: int | None = None) -> list[dict]:
    """``path.jsonl``, or ``hub:<owner/name>[:config][@split][?problem=<col>&answer=<col>]`` mapped to
    ``{id, source, problem, answer}`` by benchmarks.math.datasets (columns guessed unless given), e.g.
    ``hub:open-r1/DAPO-Math-17k-Processed:en@train?problem=prompt&answer=solution``."""
    if spec.startswith("hub:"):
        from dataclasses import replace
        from urllib.parse import parse_qs

        from benchmarks.math.datasets import _parse_hub_id, from_hub

        hub_id, _, query = spec[4:].partition("?")
        opts = {k: v[-1] for k, v in parse_qs(query).items()}
        unknown = set(opts) - {"problem", "answer"}
        if unknown:
            raise ValueError(f"--train-data {spec!r}: unknown option(s) {sorted(unknown)} (problem, answer)")
        hub = replace(_parse_hub_id(hub_id), problem_field=opts.get("problem"), answer_field=opts.get("answer"))
        rows = from_hub(hub.repo.split("/")[-1], hub, limit=limit)
    else:
        rows = read_jsonl(spec, limit)
    return _boxed_problems(rows, spec)


def _boxed_problems(rows: list[dict], spec: str) -> list[dict]:
    """Problems without DAPO's "Answer: $Answer" wrapper (benchmarks.math.prompts.strip_answer_instructions):
    the prompt template asks for \\boxed{} and the rewards read only that."""
    from benchmarks.math.prompts import strip_answer_instructions

    out, n = [], 0
    for r in rows:
        p = strip_answer_instructions(str(r["problem"]))
        n += p != r["problem"]
        out.append({**r, "problem": p} if p != r["problem"] else r)
    if n:
        print(f"train_rl: {spec}: removed DAPO's 'Answer: $Answer' instruction from {n} of {len(rows)} problems "
              f"(the template asks for \\boxed{{}})", file=sys.stderr)
    return out


def build_prompt(problem: str, template: str, tokenizer=None) -> str:
    try:
        from benchmarks.math.prompts import build_prompt as harness_prompt
    except ImportError:  # harness not importable yet: the plain template is defined by the interface
        if template != "plain":
            raise
        return f"Problem: {problem}\nSolution:"
    return harness_prompt(problem, template, tokenizer)


def greedy_accuracy(model, tokenizer, rows: list[dict], template: str, max_new_tokens: int,
                    batch_size: int) -> dict[str, float]:
    """Greedy pass@1 and mean response length (generated tokens incl. EOS) on ``rows`` (validation during
    training), through the evaluation harness's generation and grading."""
    from benchmarks.math.generation import Sampling, generate
    from benchmarks.math.grading import grade

    prompts = [build_prompt(r["problem"], template, tokenizer) for r in rows]
    comps = generate(model, tokenizer, prompts, Sampling(n=1, temperature=0.0, max_new_tokens=max_new_tokens),
                     batch_size=batch_size)
    correct = sum(grade(c[0].text, str(r["answer"])) for c, r in zip(comps, rows))
    lengths = sum(c[0].num_tokens for c in comps)
    return {"acc": correct / len(rows), "response_length": lengths / len(rows)}


# ----------------------------------------------------------------------------------------------------------------
def _curve_rows(log_path: Path, args: TrainRLArgs, method: str, train_name: str, val_name: str | None) -> list[dict]:
    from repro.results import make_row

    rows, train_steps = [], []
    keys = {"entropy": "entropy", "reward": "reward", "cov_mean": "cov_mean",
            "completions/mean_length": "response_length", "frac_selected": "frac_selected",
            "clip_frac": "clip_frac", "logratio_abs_mean": "logratio_abs_mean"}
    for line in log_path.read_text().splitlines():
        rec = json.loads(line)
        step = int(rec.get("step", -1))
        for k, v in rec.items():
            if k.startswith("val/") and v is not None:
                rows.append(make_row(args.paper, method, args.model_name, val_name or "val", args.seed, step,
                                     f"val_{k[4:]}", float(v)))
        if "entropy" in rec and rec["entropy"] is not None:
            train_steps.append(rec)
            for k, name in keys.items():
                if rec.get(k) is not None:
                    rows.append(make_row(args.paper, method, args.model_name, train_name, args.seed, step,
                                         name, float(rec[k])))
    if train_steps:  # mean over the first / last rollout step (its ppo_minibatches optimiser steps)
        k = max(1, min(args.ppo_minibatches, len(train_steps)))
        first = sum(r["entropy"] for r in train_steps[:k]) / k
        last = sum(r["entropy"] for r in train_steps[-k:]) / k
        rows.append(make_row(args.paper, method, args.model_name, train_name, args.seed, -1,
                             "entropy_initial", float(first)))
        rows.append(make_row(args.paper, method, args.model_name, train_name, args.seed, -1,
                             "entropy_final", float(last)))
    return rows


def build_trainer(args: TrainRLArgs, world: int = 1, kw: dict | None = None, reward_opts: dict | None = None):
    """The configured ``PolicyLossGRPOTrainer`` of a run (model, data, reward, callbacks), not yet trained.

    Returns ``(trainer, tokenizer, train_name, val_name)``. The prompts are the evaluation harness's
    (``benchmarks.math.prompts.build_prompt``), so RL trains on the distribution it is judged on
    (tests/test_engine_train_rl.py checks prompts, token ids and sampling settings against the harness).
    """
    cfg = grpo_config(args, world)
    kw = loss_kwargs(args) if kw is None else kw
    reward_opts = reward_opts or {}

    import numpy as np
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, set_seed

    from methods.engine.rewards import make_reward
    from methods.engine.trainer import JsonlLogCallback, PolicyLossGRPOTrainer, ValidationCallback

    torch.set_num_threads(max(1, args.threads))
    random.seed(args.seed)
    np.random.seed(args.seed)
    set_seed(args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    tokenizer = AutoTokenizer.from_pretrained(args.model)
    tokenizer.padding_side = "left"
    # fp32 master weights even with bf16: TRL/accelerate autocast the forward; a bf16 parameter cannot take the
    # papers' 5e-7 steps (0.02 + 5e-7 == 0.02 in bf16), so the official runs keep fp32 masters too
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32)
    train_rows = filter_rows(load_rows(args.train_data, None if args.train_filter else args.train_limit),
                             args.train_filter)[:args.train_limit]
    train_name = (Path(args.train_data).stem if not args.train_data.startswith("hub:")
                  else args.train_data[4:].split("?")[0].split("/")[-1].split(":")[0].split("@")[0])
    extra_cols = [k for k in train_rows[0] if k not in ("problem", "prompt", "solution")]
    dataset = Dataset.from_list([{"prompt": build_prompt(r["problem"], args.template, tokenizer),
                                  **{k: (None if r.get(k) is None else str(r.get(k))) for k in extra_cols}}
                                 for r in train_rows])
    reward_fn = make_reward(args.reward, num_generations=args.num_generations, **reward_opts)

    sink = JsonlLogCallback(out / "train_log.jsonl")
    callbacks = [sink]
    val_name = None
    if args.val_data:
        val_rows = read_jsonl(args.val_data, args.val_limit)
        val_name = Path(args.val_data).stem

        def validate(m):
            return greedy_accuracy(m, tokenizer, val_rows, args.template, args.max_completion_length,
                                   args.eval_batch_size)

        callbacks.append(ValidationCallback(validate, args.val_every, sink))

    trainer = PolicyLossGRPOTrainer(model=model, reward_funcs=reward_fn, args=cfg, train_dataset=dataset,
                                    processing_class=tokenizer, callbacks=callbacks, policy_loss=args.policy_loss,
                                    loss_kwargs=kw, selection_seed=args.seed)
    return trainer, tokenizer, train_name, val_name


def main(argv: list[str] | None = None) -> int:
    args = parse_dataclass(TrainRLArgs, argv)
    method = args.method or args.policy_loss
    kw = loss_kwargs(args)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    try:
        reward_opts = json.loads(args.reward_kwargs or "{}")
    except json.JSONDecodeError as e:
        raise ValueError(f"--reward-kwargs: not a JSON object ({e.msg})") from None
    from methods.engine.rewards import available_rewards

    if args.reward not in available_rewards():
        raise ValueError(f"--reward: unknown reward {args.reward!r}; registered: {available_rewards()}")
    if args.importance_sampling_level not in ("token", "sequence"):
        raise ValueError(f"--importance-sampling-level must be token or sequence, got {args.importance_sampling_level!r}")
    if args.dry_run:
        print(json.dumps({"args": asdict(args), "loss_kwargs": kw, "batch": batch_geometry(args, world),
                          "grpo": grpo_settings(args, world)}, indent=2, default=str))
        return 0
    from repro.provenance import utc_now
    from repro.results import write_run

    started = utc_now()
    out = Path(args.out)
    trainer, tokenizer, train_name, val_name = build_trainer(args, world, kw, reward_opts)
    max_steps = trainer.args.max_steps
    print(f"train_rl: {args.policy_loss} on {train_name} ({len(trainer.train_dataset)} prompts), "
          f"{max_steps} optimiser steps, seed {args.seed}", file=sys.stderr, flush=True)
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)  # one compact progress line per step instead of raw dicts
    trainer.add_callback(_ProgressCallback(max_steps))
    trainer.train()

    rows = _curve_rows(out / "train_log.jsonl", args, method, train_name, val_name)
    # the checkpoint is also what a vLLM or multi-process final evaluation reads (eval_target)
    need_ckpt = bool(args.eval_datasets) and (args.use_vllm or world > 1)
    model_dir = out / "model" if (args.save_model or need_ckpt) else None
    if model_dir is not None:
        trainer.save_model(str(model_dir))  # gathers a sharded model; every rank takes part
        tokenizer.save_pretrained(str(model_dir))
    trainer.accelerator.wait_for_everyone()
    if not trainer.accelerator.is_main_process:
        return 0
    if args.eval_datasets:
        target, backend = eval_target(args, trainer.model, model_dir, world)
        rows += final_eval(target, tokenizer, args, method, backend)
    write_run(out, rows, config=args, seed=args.seed, started=started)
    print(f"train_rl: wrote {out / 'metrics.json'} ({len(rows)} rows)", file=sys.stderr)
    return 0


class _ProgressCallback:  # a TrainerCallback without the import at module level
    def __new__(cls, total: int):
        from transformers import TrainerCallback

        class P(TrainerCallback):
            def __init__(self):
                self.last = None

            def on_log(self, args, state, control, logs=None, **kw):
                if not state.is_world_process_zero or not logs or "entropy" not in logs:
                    return
                parts = [f"step {state.global_step}/{total}: entropy {logs['entropy']:.3f}"]
                if "cov_mean" in logs:
                    parts.append(f"cov {logs['cov_mean']:+.4f}")
                if "reward" in logs:  # logged on the first optimiser step of each rollout
                    parts.append(f"reward {logs['reward']:.3f} len {logs.get('completions/mean_length', 0):.1f}")
                print(" ".join(parts), file=sys.stderr, flush=True)

        return P()


def eval_target(args: TrainRLArgs, trained, model_dir: Path | None, world: int = 1):
    """What the final evaluation runs on: ``(model or checkpoint path, backend)``.

    One process with HF rollouts: the trained model in memory. With vLLM (GPU tiers) the saved checkpoint through
    ``vllm.LLM`` when vLLM is importable -- the torch module cannot be handed to vLLM -- else the checkpoint
    loaded with transformers; with several processes the checkpoint too, since the in-memory model is sharded.
    """
    if model_dir is None or (not args.use_vllm and world == 1):
        return trained, "hf"
    import importlib.util

    if args.use_vllm and importlib.util.find_spec("vllm") is not None:
        return str(model_dir), "vllm"
    import torch
    from transformers import AutoModelForCausalLM

    dev = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.bfloat16 if args.bf16 else torch.float32
    return AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype).to(dev).eval(), "hf"


def final_eval(model, tokenizer, args: TrainRLArgs, method: str, backend: str = "hf") -> list[dict]:
    """Final evaluation with benchmarks.math.evaluate.evaluate_model; rows in the results format.

    ``model`` is a torch model (``backend="hf"``) or a checkpoint path (``backend="vllm"``), see :func:`eval_target`.
    """
    from benchmarks.math.evaluate import evaluate_model
    from repro.results import make_row

    if not args.eval_data_dir:
        raise ValueError("--eval-datasets needs --eval-data-dir")
    data = {name: read_jsonl(Path(args.eval_data_dir) / f"{name}.jsonl", args.eval_limit)
            for name in args.eval_datasets}
    if backend == "vllm":
        from benchmarks.math.generation import load_vllm

        model = load_vllm(model, seed=args.seed)
    else:
        model.eval()
    metrics, samples = evaluate_model(model, tokenizer, data, protocol=args.eval_protocol, template=args.template,
                                      seed=args.seed, max_new_tokens=args.eval_max_new_tokens,
                                      n_samples=args.eval_n_samples,
                                      batch_size=args.eval_batch_size, backend=backend,
                                      grade_workers=None if backend == "vllm" else 0)
    from repro.io import write_jsonl

    write_jsonl(Path(args.out) / "samples.jsonl", samples)
    rows = []
    for ds, ms in metrics.items():
        for metric, value in ms.items():
            if isinstance(value, (int, float)) and math.isfinite(float(value)):
                rows.append(make_row(args.paper, method, args.model_name, ds, args.seed, -1, metric, float(value)))
    return rows


if __name__ == "__main__":
    sys.exit(main())
