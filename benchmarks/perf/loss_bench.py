"""Cost of the Entropy-Mechanism losses relative to ``grpo_loss``.

    python -m benchmarks.perf.loss_bench --out work/tiny/perf/entropy_mechanism

1. One optimisation step of a nano-sized Qwen2 model (forward, per-token log-probs, loss, backward) on the
   same batch with each loss; prints the best step time and the ratio to ``grpo_loss`` (target <= 1.05x).
2. The loss functions alone (forward + backward w.r.t. logp) on a (64, 4096) batch; prints the ratios.
3. A whole optimisation step through the TRL adapter with gradient accumulation (``ga`` micro-batches of one
   mini-batch, the paper tier's GA = 8, rollout log-probs present as with several mini-batches per rollout):
   the mini-batch-wide token selection included.
Writes ``<out>/bench.json``. Timings are the minimum over ``repeats`` interleaved runs after one warm-up.
Prints, for a script to read: ``clip_cov loss-only vs clipped: N.NNx``, ``kl_cov loss-only vs clipped: N.NNx``,
``clip_cov step at GA=8 vs grpo: N.NNx``, ``kl_cov step at GA=8 vs grpo: N.NNx`` (goal <= 1.10x).
"""
from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from methods.entropy_mechanism.losses import LOSSES
from repro.cli import parse_dataclass


@dataclass
class LossBenchArgs:
    """Time each policy loss against grpo_loss."""

    batch: int = 64  # responses in the benchmarked optimisation step
    prompt_len: int = 16  # prompt tokens per response
    seq_len: int = 48  # response tokens per response
    vocab: int = 100  # vocabulary (the nano tokenizer is ~100 characters)
    loss_rows: int = 64  # rows of the loss-only batch
    loss_cols: int = 4096  # columns of the loss-only batch
    repeats: int = 5  # timed repetitions (minimum reported)
    loss_repeats: int = 40  # timed repetitions of the loss-only passes (a few ms each: 5 left the ratio +-0.2 noisy)
    ga: int = 8  # micro-batches per optimisation step in the adapter benchmark (paper tier: 8)
    micro: int = 4  # responses per micro-batch in the adapter benchmark
    threads: int = 1  # torch CPU threads
    seed: int = 0  # seed of the model and the batch
    out: str = "work/tiny/perf/entropy_mechanism"  # output directory (bench.json)


def _best_times(fns: dict, repeats: int) -> dict[str, float]:
    """Best (minimum) wall time of each callable over ``repeats`` (the least load-sensitive estimate on a
    shared CPU); the callables are interleaved (round robin) so that load drift on a
    shared machine hits all of them alike."""
    for fn in fns.values():
        fn()  # warm-up
    times = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
    return {k: min(v) for k, v in times.items()}


def _nano_model(vocab: int, seed: int):
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(seed)
    cfg = Qwen2Config(vocab_size=vocab, hidden_size=128, intermediate_size=384, num_hidden_layers=4,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                      tie_word_embeddings=True)
    return Qwen2ForCausalLM(cfg)


def step_bench(args: LossBenchArgs) -> dict[str, float]:
    model = _nano_model(args.vocab, args.seed)
    g = torch.Generator().manual_seed(args.seed)
    B, P, T = args.batch, args.prompt_len, args.seq_len
    ids = torch.randint(0, args.vocab, (B, P + T), generator=g)
    lengths = torch.randint(T // 2, T + 1, (B,), generator=g)
    mask = torch.arange(T)[None] < lengths[:, None]
    adv = torch.randn(B, generator=g)
    with torch.no_grad():
        logits = model(input_ids=ids).logits[:, P - 1:-1]
        old = torch.log_softmax(logits.float(), -1).gather(-1, ids[:, P:, None]).squeeze(-1)
    old = old + 0.05 * torch.randn(old.shape, generator=g)  # off-policy so every branch is exercised

    def one_step(name):
        fn, kw = LOSSES[name]
        extra = {"generator": torch.Generator().manual_seed(0)} if name == "clip_cov" else {}

        def run():
            model.zero_grad(set_to_none=True)
            logits = model(input_ids=ids).logits[:, P - 1:-1]
            logp = torch.log_softmax(logits.float(), -1).gather(-1, ids[:, P:, None]).squeeze(-1)
            loss, _ = fn(logp, old, adv, mask, **kw, **extra)
            loss.backward()
        return run

    return _best_times({name: one_step(name) for name in LOSSES}, args.repeats)


def loss_only_bench(args: LossBenchArgs, R: int | None = None, C: int | None = None) -> dict[str, float]:
    g = torch.Generator().manual_seed(args.seed + 1)
    R, C = R or args.loss_rows, C or args.loss_cols
    old = -torch.rand(R, C, generator=g) * 3
    base = old + 0.05 * torch.randn(R, C, generator=g)
    adv = torch.randn(R, generator=g)
    mask = torch.arange(C)[None] < torch.randint(C // 2, C + 1, (R,), generator=g)[:, None]

    def one(name):
        fn, kw = LOSSES[name]
        extra = {"generator": torch.Generator().manual_seed(0)} if name == "clip_cov" else {}

        def run():
            logp = base.clone().requires_grad_(True)
            loss, _ = fn(logp, old, adv, mask, **kw, **extra)
            loss.backward()
        return run

    return _best_times({name: one(name) for name in LOSSES}, max(args.repeats, args.loss_repeats))


def adapter_step_bench(args: LossBenchArgs) -> dict[str, float]:
    """One optimiser step of ``ga`` micro-batches through PolicyLossGRPOTrainer.compute_loss per policy loss."""
    import tempfile

    from datasets import Dataset
    from trl import GRPOConfig

    from benchmarks.arith.tokenizer import build_tokenizer
    from methods.engine.trainer import PolicyLossGRPOTrainer

    tok = build_tokenizer()
    model = _nano_model(len(tok), args.seed)
    g = torch.Generator().manual_seed(args.seed)
    B, P, T = args.ga * args.micro, args.prompt_len, args.seq_len
    lengths = torch.randint(T // 2, T + 1, (B,), generator=g)
    batch = dict(prompt_ids=torch.randint(0, len(tok), (B, P), generator=g), prompt_mask=torch.ones(B, P, dtype=torch.long),
                 completion_ids=torch.randint(0, len(tok), (B, T), generator=g),
                 completion_mask=(torch.arange(T)[None] < lengths[:, None]).long(),
                 advantages=torch.randn(B, generator=g))
    with torch.no_grad():
        logits = model(input_ids=torch.cat([batch["prompt_ids"], batch["completion_ids"]], 1)).logits[:, P - 1:-1]
        lp = torch.log_softmax(logits.float(), -1).gather(-1, batch["completion_ids"][..., None]).squeeze(-1)
    batch["old_per_token_logps"] = lp + 0.05 * torch.randn(B, T, generator=g)
    micro = [{k: v[i * args.micro:(i + 1) * args.micro] for k, v in batch.items()} for i in range(args.ga)]
    data = Dataset.from_list([{"prompt": "Problem: 1 + 1\nSolution:"}] * 8)
    kwargs = {"clip_cov": {"clip_ratio": 2e-2}, "kl_cov": {"k_ratio": 2e-2}}
    trainers = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("grpo", "clip_cov", "kl_cov"):
            cfg = GRPOConfig(output_dir=tmp, use_cpu=True, per_device_train_batch_size=args.micro,
                             gradient_accumulation_steps=args.ga, steps_per_generation=args.ga * 2,
                             num_generations=4, max_completion_length=T, report_to=[], loss_type="bnpo", seed=0)
            tr = PolicyLossGRPOTrainer(model=model, reward_funcs=lambda completions, **kw: [0.0] * len(completions),
                                       args=cfg, train_dataset=data, processing_class=tok, policy_loss=name,
                                       loss_kwargs=kwargs.get(name))
            tr.model.train()
            tr.current_gradient_accumulation_steps = args.ga
            trainers[name] = tr

    def one(name):
        tr = trainers[name]

        def run():
            tr.model.zero_grad(set_to_none=True)
            tr._buffered_inputs, tr._window_index = micro, -1
            for i, mb in enumerate(micro):
                tr._step = i
                tr.compute_loss(tr.model, mb).backward()
        return run

    return _best_times({name: one(name) for name in trainers}, args.repeats)


def main(argv: list[str] | None = None) -> int:
    args = parse_dataclass(LossBenchArgs, argv)
    torch.set_num_threads(max(1, args.threads))
    step = step_bench(args)
    alone = loss_only_bench(args)
    # the loss at the step's own shape: its extra cost over grpo_loss bounds the step overhead without the
    # model's timing noise (the forward/backward of the model is identical for every loss)
    at_step = loss_only_bench(args, args.batch, args.seq_len)
    bound = {k: (step["grpo"] + max(0.0, at_step[k] - at_step["grpo"])) / step["grpo"] for k in LOSSES}
    ga = adapter_step_bench(args)
    result = {"config": asdict(args), "step_s": step, "step_ratio": {k: v / step["grpo"] for k, v in step.items()},
              "adapter_step_s": ga, "adapter_step_ratio": {k: v / ga["grpo"] for k, v in ga.items()},
              "loss_at_step_shape_s": at_step, "step_overhead_bound": bound,
              "loss_s": alone, "loss_ratio": {k: v / alone["grpo"] for k, v in alone.items()}}
    print(f"optimisation step (nano model, batch {args.batch} x {args.seq_len}):")
    for k in LOSSES:
        print(f"  {k:12s} {step[k] * 1e3:8.1f} ms   {result['step_ratio'][k]:.3f}x grpo   (loss at this shape "
              f"{at_step[k] * 1e3:.2f} ms -> overhead bound {bound[k]:.4f}x)")
    print(f"loss alone ({args.loss_rows} x {args.loss_cols}, forward + backward):")
    for k in LOSSES:
        print(f"  {k:12s} {alone[k] * 1e3:8.2f} ms   {result['loss_ratio'][k]:.3f}x grpo")
    print(f"adapter optimisation step, GA = {args.ga} x {args.micro} responses (rollout log-probs present):")
    for k, v in ga.items():
        print(f"  {k:12s} {v * 1e3:8.1f} ms   {v / ga['grpo']:.3f}x grpo")
    for k in ("clip_cov", "kl_cov"):
        print(f"{k} loss-only vs clipped: {result['loss_ratio'][k]:.2f}x")
    for k in ("clip_cov", "kl_cov"):
        print(f"{k} step at GA={args.ga} vs grpo: {result['adapter_step_ratio'][k]:.2f}x")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench.json").write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
