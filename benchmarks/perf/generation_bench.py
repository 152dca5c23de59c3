"""Rollout throughput: the compact decode loop (benchmarks.math.fastgen) vs transformers' ``generate``.

    python -m benchmarks.perf.generation_bench                      # the trained nano model if present
    python -m benchmarks.perf.generation_bench --model none          # a random nano-sized model

Both sides decode the same prompts with the same seed, side by side in one run (timed passes alternate between
them), on one thread, and must return the same tokens (checked: greedy and sampled). Tokens/s counts the generated
tokens of every row up to and including its EOS -- what an RL rollout or an evaluation gets; ``generate`` keeps
computing rows that have finished until the longest one is done, the compact loop drops them. Prints, for a script
to read::

    rollout speedup vs hf generate (batch 32): N.NNx

and the same for batch 1 and 128. Each line is followed by where the compact loop's time goes (median of
profiled passes): the share spent inside the ATen kernels that do the arithmetic -- matrix products and, on the
tensor-op path only, SDPA's attention kernel and the sampling noise that must be drawn exactly as ``generate``
draws it -- and the speedup that would remain if everything else cost nothing::

    fastgen time in arithmetic kernels (batch 32): NN%; speedup ceiling at zero overhead: N.NNx

and the same for the matrix products alone (``aten::mm`` / ``addmm`` / ``bmm`` and MKL's packed
``mkl::_mkl_linear``: the weights' GEMMs, which any implementation of the same float32 network must compute,
and which run near the core's float32 peak here)::

    fastgen time in matrix products (batch 32): NN%; speedup ceiling with only the GEMMs: N.NNx

With the fused C++ forward (benchmarks/math/fastgen_cpu.cpp) the loops between the GEMMs -- norms, rotary,
attention, SiLU, residual adds, the sampling and its noise -- are not ATen ops, so the profiler counts them as
overhead: the ceilings then say
what would remain if those loops (and the Python loop) cost nothing, not what a leaner Python loop could win.
``--threads`` other than 1 and ``REPRO_FASTGEN_CPP=0`` (the tensor-op path) are for comparison.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch


@dataclass
class GenBenchArgs:
    """Tokens/s of fastgen.decode vs model.generate by batch size (same prompts, seed, outputs)."""

    model: str = "work/tiny/nano/model"  # model directory; "none" (or missing) = a random nano-sized model
    data: str = "work/tiny/data/arith/arith_test.jsonl"  # prompts (plain template); synthetic ones if missing
    batch_sizes: list[int] = field(default_factory=lambda: [1, 32, 128])  # batch sizes to time
    prompts: int = 128  # prompts per measurement (batch 1: the first 16)
    max_new_tokens: int = 64  # generation budget per completion
    temperature: float = 1.0  # rollout temperature (0 = greedy)
    repeats: int = 5  # timed passes per side, alternated between the sides (the median is reported)
    threads: int = 1  # torch CPU threads
    seed: int = 0  # sampling seed
    out: str | None = None  # optional JSON file for the measurements


def _model_and_prompts(args: GenBenchArgs):
    from benchmarks.math.prompts import build_prompt

    if args.model != "none" and Path(args.model, "config.json").exists():
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tok, model, name = AutoTokenizer.from_pretrained(args.model), AutoModelForCausalLM.from_pretrained(args.model), args.model
    else:
        from benchmarks.arith.model import NanoModelSpec, build_model
        from benchmarks.arith.tokenizer import build_tokenizer

        tok = build_tokenizer()
        model, name = build_model(NanoModelSpec(), tok, seed=args.seed), "random nano-sized model"
    model.eval()
    if Path(args.data).exists():
        problems = [json.loads(line)["problem"] for line in Path(args.data).read_text().splitlines()[:args.prompts]]
    else:
        problems = [f"Compute {i % 9} + {3 * i % 7} × {i % 5} - {i % 4}." for i in range(args.prompts)]
    return model, tok, [build_prompt(p, "plain") for p in problems], name


def _time_pair(fa, fb, repeats: int) -> tuple[float, object, float, object]:
    """Median seconds and last output of ``fa`` and of ``fb`` over ``repeats`` passes each, alternated (a, b, b,
    a, ...) so that a drift in the machine's speed during the run falls on both sides alike."""
    times, outs = ([], []), [None, None]
    for r in range(repeats):
        for k in ((0, 1) if r % 2 == 0 else (1, 0)):
            t0 = time.perf_counter()
            outs[k] = (fa, fb)[k]()
            times[k].append(time.perf_counter() - t0)
    med = [sorted(t)[len(t) // 2] for t in times]
    return med[0], outs[0], med[1], outs[1]


def _generated(ids: torch.Tensor, eos: int) -> int:
    """Generated tokens of every row up to and including its first EOS."""
    n = 0
    for row in ids.tolist():
        n += row.index(eos) + 1 if eos in row else len(row)
    return n


# the ops whose time is arithmetic rather than loop overhead; exponential_ is the sampling noise
_GEMMS = ("aten::mm", "aten::addmm", "aten::bmm", "mkl::_mkl_linear")
_KERNELS = _GEMMS + ("aten::_scaled_dot_product_flash_attention_for_cpu", "aten::_scaled_dot_product_attention_math",
                     "aten::exponential_")


def kernel_seconds(fn, repeats: int) -> tuple[float, float]:
    """Medians over ``repeats`` profiled calls of ``fn`` of the seconds spent inside :data:`_KERNELS` and inside
    the matrix products among them (their own time; the profiler's overhead falls between ops, so this is compared
    with unprofiled calls' wall time)."""
    from torch.profiler import profile

    times, gemm = [], []
    for _ in range(repeats):
        with profile() as prof:
            fn()
        own = {e.key: e.self_cpu_time_total / 1e6 for e in prof.key_averages()}
        times.append(sum(own.get(k, 0.0) for k in _KERNELS))
        gemm.append(sum(own.get(k, 0.0) for k in _GEMMS))
    return sorted(times)[len(times) // 2], sorted(gemm)[len(gemm) // 2]


def main(argv=None) -> list[dict]:
    from benchmarks.math import fastgen
    from repro.cli import parse_dataclass

    args = parse_dataclass(GenBenchArgs, argv)
    torch.set_num_threads(args.threads)
    model, tok, prompts, name = _model_and_prompts(args)
    tok.padding_side = "left"
    eos, pad = tok.eos_token_id, tok.pad_token_id
    print(f"model: {name} ({sum(p.numel() for p in model.parameters()) / 1e6:.2f}M params), threads {args.threads}, "
          f"T = {args.temperature}, max_new_tokens {args.max_new_tokens}; fastgen path: {fastgen.path(model)}")
    kw = dict(do_sample=True, temperature=args.temperature, top_p=1.0, top_k=0) if args.temperature > 0 \
        else dict(do_sample=False)
    results = []
    for bs in args.batch_sizes:
        batch = prompts[:16] if bs == 1 else prompts
        chunks = [batch[i:i + bs] for i in range(0, len(batch), bs)]
        encs = [tok(c, return_tensors="pt", padding=True, add_special_tokens=False) for c in chunks]

        def hf():
            outs = []
            for i, e in enumerate(encs):
                torch.manual_seed(args.seed + i)
                with torch.no_grad():
                    out = model.generate(**e, max_new_tokens=args.max_new_tokens, pad_token_id=pad, eos_token_id=eos, **kw)
                outs.append(out[:, e["input_ids"].shape[1]:])
            return outs

        def fast():
            outs = []
            for i, e in enumerate(encs):
                torch.manual_seed(args.seed + i)
                ids, _ = fastgen.decode(model, e["input_ids"], e["attention_mask"], max_new_tokens=args.max_new_tokens,
                                        temperature=args.temperature, top_p=1.0, eos_ids=[eos], pad_id=pad)
                outs.append(ids)
            return outs

        hf()  # warm-up
        fast()
        t_hf, ref, t_fast, got = _time_pair(hf, fast, args.repeats)
        same = all(a.shape == b.shape and torch.equal(a, b) for a, b in zip(ref, got))
        n_tok = sum(_generated(o, eos) for o in ref)
        row = {"batch_size": bs, "tokens": n_tok, "hf_s": t_hf, "fast_s": t_fast, "hf_tokens_per_s": n_tok / t_hf,
               "fast_tokens_per_s": n_tok / t_fast, "speedup": t_hf / t_fast, "identical": same}
        results.append(row)
        print(f"batch {bs:3d}: {n_tok} tokens; hf generate {n_tok / t_hf:8.0f} tokens/s, fastgen "
              f"{n_tok / t_fast:8.0f} tokens/s; identical outputs: {same}")
        print(f"rollout speedup vs hf generate (batch {bs}): {t_hf / t_fast:.2f}x")
        kern, gemm = kernel_seconds(fast, args.repeats)
        row.update(fast_kernel_s=kern, fast_kernel_share=kern / t_fast, speedup_ceiling=t_hf / kern,
                   fast_gemm_s=gemm, fast_gemm_share=gemm / t_fast, speedup_ceiling_gemm=t_hf / gemm)
        print(f"fastgen time in arithmetic kernels (batch {bs}): {100 * kern / t_fast:.0f}%; "
              f"speedup ceiling at zero overhead: {row['speedup_ceiling']:.2f}x")
        print(f"fastgen time in matrix products (batch {bs}): {100 * gemm / t_fast:.0f}%; "
              f"speedup ceiling with only the GEMMs: {row['speedup_ceiling_gemm']:.2f}x")
        if not same:
            raise SystemExit(f"batch {bs}: fastgen and generate disagree -- the speedup does not count")
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
