"""Logit-skewness analysis of One-shot EM (Gao et al., 2025, arXiv 2505.20282, Sec. 4 "logit shift").

For each of ``n_prompts`` problems, sample one response at T = 0.6 and record the raw
full-vocabulary logits at every generated step (up to and including EOS). The skewness
(``scipy.stats.skew``, Fisher-Pearson, biased) of each step's logit vector is averaged over steps
and prompts. The paper: EM shifts it to the right (more right-skewed), RL to the left.

Each model is measured on its own samples (the paper's protocol), so a method that changes *what* the model
writes (e.g. the solution style) also changes *which* steps are averaged. With ``--reference-model`` the same
prompts are also sampled from that model (same seeds, so the base model's own samples when it is the reference)
and the subject's logits on those fixed tokens give ``logit_skewness_on_reference``: the logit shift on the same
steps, apart from that composition effect (a diagnostic beside the paper's number, not a replacement).

    python -m methods.one_shot_em.skewness --model M --data-dir D --dataset arith_test \
        --method one_shot_em --out work/tiny/one_shot_em/skew/one_shot_em
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

__all__ = ["SkewArgs", "step_skewness", "measure", "main"]


def step_skewness(step_logits: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Skewness of each valid step's logit vector.

    Args:
        step_logits: (N, V) logits (one row per generated step).
        valid: (N,) bool; rows to keep.

    Returns:
        (n_valid,) scipy.stats.skew over the vocabulary axis.
    """
    from scipy.stats import skew

    rows = np.asarray(step_logits, dtype=np.float64)[np.asarray(valid, dtype=bool)]
    return skew(rows, axis=1) if len(rows) else np.zeros(0)


@dataclass
class SkewArgs:
    """Mean logit skewness of generated steps."""

    model: str  # model path or hub id
    out: str  # run directory (metrics.json, skew_steps.jsonl)
    data_dir: str | None = None  # local dir with <dataset>.jsonl
    dataset: str = "arith_test"  # prompts are the first n_prompts problems of this dataset
    n_prompts: int = 20  # number of prompts (paper 20)
    temperature: float = 0.6  # sampling temperature (paper 0.6)
    max_new_tokens: int = 128  # response cap
    template: str = "plain"  # prompt template
    seed: int = 0  # sampling seed
    threads: int = 1  # torch CPU threads
    paper: str = "one_shot_em"  # result rows: paper
    method: str = "base"  # result rows: method (base, one_shot_em, grpo, em_then_rl, ...)
    model_name: str = "nano"  # result rows: model
    run_seed: int | None = None  # seed of the run that produced the model (result rows' seed; default = seed)
    reference_model: str | None = None  # also measure on this model's samples (logit_skewness_on_reference)


def _sample_logits(model, enc, args: SkewArgs, tok, pad: int, seed: int) -> tuple[np.ndarray, list[int]]:
    """One response sampled at ``args.temperature`` (seeded): its raw logits per step (steps, V), before the
    temperature, and its generated token ids."""
    import torch

    torch.manual_seed(seed)
    with torch.no_grad():
        out = model.generate(**enc, do_sample=True, temperature=args.temperature, top_p=1.0, top_k=0,
                             max_new_tokens=args.max_new_tokens, pad_token_id=pad,
                             eos_token_id=tok.eos_token_id, output_logits=True, return_dict_in_generate=True)
    logits = torch.stack(out.logits, dim=1)[0].float().numpy()
    return logits, out.sequences[0, enc["input_ids"].shape[1]:].tolist()


def _valid_steps(gen: list[int], eos: int, n_steps: int) -> np.ndarray:
    """(n_steps,) bool: the steps up to and including the first EOS of ``gen``."""
    n = gen.index(eos) + 1 if eos in gen else len(gen)
    return np.arange(n_steps) < n


def measure(args: SkewArgs) -> Path:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from benchmarks.math.datasets import load_problems
    from benchmarks.math.prompts import build_prompt
    from repro.io import write_jsonl
    from repro.progress import progress
    from repro.provenance import utc_now
    from repro.results import make_row, write_run

    started = utc_now()
    torch.set_num_threads(args.threads)
    tok = AutoTokenizer.from_pretrained(args.model)
    model = AutoModelForCausalLM.from_pretrained(args.model).eval()
    rows = load_problems(args.dataset, source="local", local_dir=args.data_dir, limit=args.n_prompts)
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    ref = AutoModelForCausalLM.from_pretrained(args.reference_model).eval() if args.reference_model else None
    per_prompt, on_ref, log = [], [], []
    for i, row in enumerate(progress(rows, desc="logit skewness")):
        enc = tok(build_prompt(row["problem"], args.template, tok), return_tensors="pt", add_special_tokens=False)
        logits, gen = _sample_logits(model, enc, args, tok, pad, seed=args.seed * 100_003 + i)
        sk = step_skewness(logits, _valid_steps(gen, tok.eos_token_id, logits.shape[0]))
        per_prompt.append(float(sk.mean()) if len(sk) else float("nan"))
        entry = {"id": row.get("id"), "steps": len(sk), "mean_skew": per_prompt[-1],
                 "skew": [round(float(x), 5) for x in sk]}
        if ref is not None:
            _, ref_gen = _sample_logits(ref, enc, args, tok, pad, seed=args.seed * 100_003 + i)
            seq = torch.cat([enc["input_ids"][0], torch.tensor(ref_gen, dtype=torch.long)])[None]
            with torch.no_grad():  # logits predicting each reference token, as generate's at that step
                forced = model(seq).logits[0, enc["input_ids"].shape[1] - 1:-1].float().numpy()
            rk = step_skewness(forced, _valid_steps(ref_gen, tok.eos_token_id, forced.shape[0]))
            on_ref.append(float(rk.mean()) if len(rk) else float("nan"))
            entry["mean_skew_on_reference"] = on_ref[-1]
        log.append(entry)
    vals = [v for v in per_prompt if np.isfinite(v)]
    seed = args.seed if args.run_seed is None else args.run_seed
    res = [make_row(args.paper, args.method, args.model_name, args.dataset, seed, -1, "logit_skewness",
                    float(np.mean(vals)) if vals else float("nan"))]
    if ref is not None:
        vals = [v for v in on_ref if np.isfinite(v)]
        res.append(make_row(args.paper, args.method, args.model_name, args.dataset, seed, -1,
                            "logit_skewness_on_reference", float(np.mean(vals)) if vals else float("nan")))
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_jsonl(out_dir / "skew_steps.jsonl", log)
    return write_run(out_dir, res, config=asdict(args), seed=seed, started=started)


def main(argv=None) -> None:
    from repro.cli import parse_dataclass

    print(f"wrote {measure(parse_dataclass(SkewArgs, argv))}")


if __name__ == "__main__":
    main()
