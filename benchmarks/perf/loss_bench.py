"""Cost of the Entropy-Mechanism losses relative to ``grpo_loss``.

    python -m benchmarks.perf.loss_bench --out work/tiny/perf/entropy_mechanism

1. One optimisation step of a nano-sized Qwen2 model (forward, per-token log-probs, loss, backward) on the
   same batch with each loss; prints the best step time and the ratio to ``grpo_loss`` (target <= 1.05x).
2. The loss functions alone (forward + backward w.r.t. logp) on a (64, 4096) batch; prints the ratios.
Writes ``<out>/bench.json``. Timings are the minimum over ``repeats`` interleaved runs after one warm-up.
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

    return _best_times({name: one(name) for name in LOSSES}, args.repeats)


def main(argv: list[str] | None = None) -> int:
    args = parse_dataclass(LossBenchArgs, argv)
    torch.set_num_threads(max(1, args.threads))
    step = step_bench(args)
    alone = loss_only_bench(args)
    # the loss at the step's own shape: its extra cost over grpo_loss bounds the step overhead without the
    # model's timing noise (the forward/backward of the model is identical for every loss)
    at_step = loss_only_bench(args, args.batch, args.seq_len)
    bound = {k: (step["grpo"] + max(0.0, at_step[k] - at_step["grpo"])) / step["grpo"] for k in LOSSES}
    result = {"config": asdict(args), "step_s": step, "step_ratio": {k: v / step["grpo"] for k, v in step.items()},
              "loss_at_step_shape_s": at_step, "step_overhead_bound": bound,
              "loss_s": alone, "loss_ratio": {k: v / alone["grpo"] for k, v in alone.items()}}
    print(f"optimisation step (nano model, batch {args.batch} x {args.seq_len}):")
    for k in LOSSES:
        print(f"  {k:12s} {step[k] * 1e3:8.1f} ms   {result['step_ratio'][k]:.3f}x grpo   (loss at this shape "
              f"{at_step[k] * 1e3:.2f} ms -> overhead bound {bound[k]:.4f}x)")
    print(f"loss alone ({args.loss_rows} x {args.loss_cols}, forward + backward):")
    for k in LOSSES:
        print(f"  {k:12s} {alone[k] * 1e3:8.2f} ms   {result['loss_ratio'][k]:.3f}x grpo")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench.json").write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
