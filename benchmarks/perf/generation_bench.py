"""hf-backend generation throughput (tokens/s) on a small locally built Qwen2 model (no download).

    python -m benchmarks.perf.generation_bench --hidden-size 128 --layers 4 --batch-sizes 1,8,32

Prompts are ``plain``-template problems; the random model stops at EOS now and then, so the
generated token count is reported (finished rows of a batch still cost compute: tokens/s is a
lower bound for large batches).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch


@dataclass
class GenBenchArgs:
    """Tokens/s of benchmarks.math.generation.generate (hf backend) by batch size."""

    hidden_size: int = 128  # model width
    layers: int = 4  # transformer layers
    prompts: int = 32  # prompts per measurement
    max_new_tokens: int = 64  # tokens generated per completion
    batch_sizes: list[int] = field(default_factory=lambda: [1, 8, 32])  # batch sizes to time
    temperature: float = 1.0  # 0 = greedy
    threads: int = 1  # torch CPU threads
    device: str = "auto"  # auto | cpu | cuda
    seed: int = 0  # model init + sampling seed


def main(argv=None) -> list[dict]:
    from benchmarks.math.generation import Sampling, generate
    from benchmarks.math.prompts import build_prompt
    from benchmarks.math.tiny import build_char_tokenizer, build_tiny_model
    from repro.cli import parse_dataclass

    args = parse_dataclass(GenBenchArgs, argv)
    torch.set_num_threads(args.threads)
    dev = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    tok = build_char_tokenizer()
    model = build_tiny_model(tok, hidden_size=args.hidden_size, layers=args.layers, seed=args.seed).to(dev)
    n_params = sum(p.numel() for p in model.parameters())
    problems = [f"Compute {i} + {2 * i} - {i % 7} and give the result." for i in range(args.prompts)]
    prompts = [build_prompt(p, "plain") for p in problems]
    sampling = Sampling(n=1, temperature=args.temperature, max_new_tokens=args.max_new_tokens, seed=args.seed)
    out = []
    print(f"model: {n_params / 1e6:.2f}M params, device {dev}, threads {args.threads}")
    for bs in args.batch_sizes:
        generate(model, tok, prompts[:bs], sampling, batch_size=bs)  # warm-up
        t0 = time.perf_counter()
        comps = generate(model, tok, prompts, sampling, batch_size=bs)
        dt = time.perf_counter() - t0
        n_tok = sum(c.num_tokens for row in comps for c in row)
        early = sum(c.num_tokens < args.max_new_tokens for row in comps for c in row)
        out.append({"batch_size": bs, "tokens": n_tok, "seconds": dt, "tokens_per_s": n_tok / dt, "early_eos": early})
        print(f"batch {bs:3d}: {n_tok} tokens in {dt:6.2f} s = {n_tok / dt:8.1f} tokens/s (early EOS: {early})")
    return out


if __name__ == "__main__":
    main()
