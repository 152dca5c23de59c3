"""Evaluate a causal LM on math sets with a paper's protocol; write metrics.json + samples.jsonl.

    python -m benchmarks.math.evaluate --model work/tiny/nano/model --datasets arith_test \\
        --data-dir work/tiny/data/arith --protocol tiny --template plain --out work/tiny/nano/eval

Protocols (../shared/spec/evaluation.md, "Protocols per paper") are presets of *decodes*; each
decode samples n completions per problem and yields metrics suffixed with its name:

| protocol | decodes (max new tokens) |
|---|---|
| greedy | greedy (3072) |
| tiny | greedy + ``t1``: 8 samples at T = 1 (256) |
| entropy_mechanism | ``t0.6``: 32 samples at T = 0.6 on AIME24/AIME25/AMC23, greedy elsewhere (8192) |
| empo | greedy (3000) |
| one_shot_em | greedy (3072) |

Metric names per dataset: ``acc_<decode>`` (avg@n, = pass@1 for greedy), ``pass@<n>_<decode>`` and
``maj@<n>_<decode>`` (n > 1), ``entropy_<decode>`` (mean token entropy, nats; hf backend, when
the protocol asks for it) with ``entropy_correct_<decode>`` / ``entropy_wrong_<decode>`` (over correct /
wrong completions), ``tokens_<decode>`` (mean completion length) and ``acc`` = the
protocol's headline score; dataset ``macro`` holds the unweighted mean of ``acc``. Sets whose completions
carry the nano testbed's style markers also get :func:`style_metrics` (``style_share_<style>_<decode>``,
``acc_style_<style>_<decode>``).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

from benchmarks.math.generation import Completion, Sampling, generate
from benchmarks.math.grading import extract_boxed, grade, grade_many
from benchmarks.math.metrics import avg_at_k, maj_at_k, macro_average, pass_at_k
from benchmarks.math.prompts import build_prompt

__all__ = ["Decode", "Protocol", "PROTOCOLS", "get_protocol", "evaluate_model", "EvalArgs", "main"]


@dataclass(frozen=True)
class Decode:
    """One decoding pass: ``n`` samples at ``temperature`` on the datasets it applies to."""

    name: str  # metric suffix, e.g. "greedy", "t1", "t0.6"
    n: int = 1
    temperature: float = 0.0
    top_p: float = 1.0
    entropy: bool = False  # record mean token entropy (hf backend only)
    only: tuple[str, ...] | None = None  # restrict to these datasets (None: all)
    exclude: tuple[str, ...] = ()  # skip these datasets


@dataclass(frozen=True)
class Protocol:
    name: str
    decodes: tuple[Decode, ...]
    max_new_tokens: int
    headline: tuple[str, ...]  # decode names in priority order for a dataset's `acc`

    def decodes_for(self, dataset: str) -> list[Decode]:
        out = []
        for d in self.decodes:
            if d.only is not None and dataset not in d.only:
                continue
            if dataset in d.exclude:
                continue
            out.append(d)
        return out

    def greedy_only(self) -> "Protocol":
        """The same protocol without its sampled decodes (the greedy ones, with their dataset restrictions).

        For evaluations that read only greedy metrics (the intermediate points of a step curve). Raises
        ValueError when the protocol has no greedy decode."""
        kept = tuple(d for d in self.decodes if d.n == 1 and d.temperature == 0)
        if not kept:
            raise ValueError(f"protocol {self.name!r} has no greedy decode")
        return Protocol(self.name, kept, self.max_new_tokens, tuple(h for h in self.headline
                                                                    if any(d.name == h for d in kept)))


_EM_SAMPLED = ("aime24", "aime25", "amc23")
PROTOCOLS: dict[str, Protocol] = {
    "greedy": Protocol("greedy", (Decode("greedy"),), 3072, ("greedy",)),
    "tiny": Protocol(
        "tiny", (Decode("greedy"), Decode("t1", n=8, temperature=1.0, entropy=True)), 256, ("greedy",)
    ),
    "entropy_mechanism": Protocol(
        "entropy_mechanism",
        (
            Decode("t0.6", n=32, temperature=0.6, only=_EM_SAMPLED),
            Decode("greedy", exclude=_EM_SAMPLED),
        ),
        8192,
        ("t0.6", "greedy"),
    ),
    "empo": Protocol("empo", (Decode("greedy"),), 3000, ("greedy",)),
    "one_shot_em": Protocol("one_shot_em", (Decode("greedy"),), 3072, ("greedy",)),
}


def get_protocol(name: str, n_samples: int | None = None) -> Protocol:
    """The preset ``name``; ``n_samples`` overrides n of its sampled decodes (e.g. 32 -> 4 on CPU)."""
    if name not in PROTOCOLS:
        raise ValueError(f"unknown protocol {name!r}; known: {sorted(PROTOCOLS)}")
    proto = PROTOCOLS[name]
    if n_samples is None:
        return proto
    decodes = tuple(
        Decode(d.name, n_samples if d.n > 1 else d.n, d.temperature, d.top_p, d.entropy, d.only, d.exclude)
        for d in proto.decodes
    )
    return Protocol(proto.name, decodes, proto.max_new_tokens, proto.headline)


def _summarize(
    decode: Decode, comps: list[list[Completion]], answers: list[list[str | None]], correct: list[list[bool]],
    equivalence_timeout_s: float, types: list[str | None] | None = None,
) -> dict[str, float]:
    sfx = decode.name
    n = len(correct[0])
    m: dict[str, float] = {f"acc_{sfx}": avg_at_k(correct)}
    if n > 1:
        m[f"pass@{n}_{sfx}"] = sum(pass_at_k(n, sum(c), n) for c in correct) / len(correct)
        from benchmarks.math.grading import answers_equivalent

        eq = lambda a, b: answers_equivalent(a, b, timeout_s=equivalence_timeout_s)  # noqa: E731
        m[f"maj@{n}_{sfx}"] = sum(maj_at_k(a, c, equivalent=eq) for a, c in zip(answers, correct)) / len(correct)
    toks = [c.num_tokens for row in comps for c in row]
    m[f"tokens_{sfx}"] = sum(toks) / len(toks)
    ents = [c.mean_entropy for row in comps for c in row if c.mean_entropy is not None]
    if decode.entropy and ents:
        m[f"entropy_{sfx}"] = sum(ents) / len(ents)
        ent_ok = [c.mean_entropy for row, oks in zip(comps, correct) for c, ok in zip(row, oks)
                  if ok and c.mean_entropy is not None]
        ent_bad = [c.mean_entropy for row, oks in zip(comps, correct) for c, ok in zip(row, oks)
                   if not ok and c.mean_entropy is not None]
        if ent_ok:
            m[f"entropy_correct_{sfx}"] = sum(ent_ok) / len(ent_ok)
        if ent_bad:
            m[f"entropy_wrong_{sfx}"] = sum(ent_bad) / len(ent_bad)
    m.update(style_metrics(sfx, comps, correct, types))
    return m


def style_metrics(sfx: str, comps: list[list[Completion]], correct: list[list[bool]],
                  types: list[str | None] | None = None) -> dict[str, float]:
    """Solution-style diagnostics (benchmarks.arith.styles) of one decode, when its completions have styles.

    ``style_share_<style>_<decode>``: fraction of completions in each style; ``acc_style_<style>_<decode>``:
    accuracy among the completions of that style; with problem ``types`` (e.g. ``mul``/``plain``) also
    ``style_share_<style>_<decode>_<type>``. Nothing for sets whose completions have no style marker.
    """
    from benchmarks.arith.styles import STYLES, classify

    styles = [[classify(c.text) for c in row] for row in comps]
    flat = [s for row in styles for s in row]
    if not flat or all(s == "other" for s in flat):
        return {}
    m: dict[str, float] = {}
    for style in (*STYLES, "other"):
        m[f"style_share_{style}_{sfx}"] = sum(s == style for s in flat) / len(flat)
        oks = [ok for row_s, row_c in zip(styles, correct) for s, ok in zip(row_s, row_c) if s == style]
        if oks:
            m[f"acc_style_{style}_{sfx}"] = sum(oks) / len(oks)
    if types and any(t is not None for t in types):
        for ptype in sorted({t for t in types if t is not None}):
            sub = [s for row, t in zip(styles, types) if t == ptype for s in row]
            for style in STYLES:
                m[f"style_share_{style}_{sfx}_{ptype}"] = sum(s == style for s in sub) / len(sub)
    return m


def evaluate_model(
    model,
    tokenizer,
    datasets: dict[str, list[dict]],
    protocol: str | Protocol,
    template: str,
    backend: str = "hf",
    batch_size: int = 8,
    seed: int = 0,
    max_new_tokens: int | None = None,
    n_samples: int | None = None,
    grade_workers: int | None = None,
    grade_timeout_s: float = 5.0,
    progress: bool = False,
    stats: dict | None = None,
) -> tuple[dict[str, dict[str, float]], list[dict]]:
    """Generate, grade and score ``datasets`` (name -> rows with id/problem/answer).

    Returns ``(metrics, samples)``: metrics[dataset][metric] -> float (plus ``macro``) and one
    sample dict per completion (dataset, decode, id, sample, prompt, completion, answer, gold,
    correct, tokens, finish_reason, entropy). ``grade_workers=0`` grades in-process (serially);
    otherwise a :class:`~benchmarks.math.grading.GraderPool` with that many workers (None: all CPUs).
    If ``stats`` is a dict it receives generation throughput (``gen_tokens``, ``gen_seconds``,
    ``gen_tokens_per_s``) and grading time (``grade_seconds``).
    """
    proto = get_protocol(protocol, n_samples) if isinstance(protocol, str) else protocol
    budget = max_new_tokens or proto.max_new_tokens
    runs: list[tuple[str, Decode, list[dict], list[str], list[list[Completion]]]] = []
    gen_tokens, gen_time = 0, 0.0
    for ds_name, rows in datasets.items():
        if not rows:
            raise ValueError(f"evaluate_model: dataset {ds_name!r} has no problems")
        if not proto.decodes_for(ds_name):
            raise ValueError(f"evaluate_model: protocol {proto.name!r} has no decode for dataset {ds_name!r}")
        prompts = [build_prompt(r["problem"], template, tokenizer) for r in rows]
        for d in proto.decodes_for(ds_name):
            sampling = Sampling(n=d.n, temperature=d.temperature, top_p=d.top_p, max_new_tokens=budget, seed=seed)
            t0 = time.perf_counter()
            comps = generate(
                model, tokenizer, prompts, sampling, backend=backend, batch_size=batch_size,
                return_entropy=d.entropy and backend == "hf", progress=progress,
            )
            gen_time += time.perf_counter() - t0
            gen_tokens += sum(c.num_tokens for row in comps for c in row) // (d.n if d.temperature == 0 else 1)
            runs.append((ds_name, d, rows, prompts, comps))

    # Grade everything in one pool.
    pairs = [(c.text, r["answer"]) for _, _, rows, _, comps in runs for r, row in zip(rows, comps) for c in row]
    t_grade = time.perf_counter()
    if grade_workers == 0:
        flat = [grade(c, g, timeout_s=grade_timeout_s) for c, g in pairs]
    else:
        flat = grade_many(pairs, timeout_s=grade_timeout_s, workers=grade_workers, progress=progress)
    t_grade = time.perf_counter() - t_grade

    metrics: dict[str, dict[str, float]] = {}
    samples: list[dict] = []
    pos = 0
    for ds_name, d, rows, prompts, comps in runs:
        answers, correct = [], []
        for r, prompt, row in zip(rows, prompts, comps):
            a_row, c_row = [], []
            for j, c in enumerate(row):
                ans, ok = extract_boxed(c.text), flat[pos]
                pos += 1
                a_row.append(ans)
                c_row.append(ok)
                samples.append(
                    dict(dataset=ds_name, decode=d.name, id=r["id"], sample=j, prompt=prompt, completion=c.text,
                         answer=ans, gold=r["answer"], correct=ok, tokens=c.num_tokens,
                         finish_reason=c.finish_reason, entropy=c.mean_entropy)
                )
            answers.append(a_row)
            correct.append(c_row)
        types = [r.get("type") for r in rows]
        metrics.setdefault(ds_name, {}).update(_summarize(d, comps, answers, correct, grade_timeout_s, types))
    for ds_name, m in metrics.items():
        for h in proto.headline:
            if f"acc_{h}" in m:
                m["acc"] = m[f"acc_{h}"]
                break
    if len(metrics) > 1:
        metrics["macro"] = {"acc": macro_average({k: v["acc"] for k, v in metrics.items()})}
    if stats is not None:
        stats.update(gen_tokens=gen_tokens, gen_seconds=gen_time, grade_seconds=t_grade,
                     gen_tokens_per_s=gen_tokens / gen_time if gen_time > 0 else 0.0)
    return metrics, samples


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------
@dataclass
class EvalArgs:
    """Evaluate a model (path or Hub id) on math sets; writes metrics.json and samples.jsonl."""

    model: str  # model directory or Hugging Face Hub id
    datasets: list[str]  # comma-separated set names, e.g. math500,aime24 or arith_test,arith_hard
    out: str  # output directory (metrics.json, samples.jsonl)
    data_dir: str | None = None  # directory of <name>.jsonl files (source local/auto)
    source: str = "local"  # where sets come from: local | hub | auto
    protocol: str = "greedy"  # greedy | tiny | entropy_mechanism | empo | one_shot_em
    template: str = "plain"  # prompt template: plain | qwen25-math-cot
    backend: str = "hf"  # generation backend: hf | vllm
    paper: str = "none"  # results row: paper this run belongs to
    method: str = "base"  # results row: method name
    model_name: str | None = None  # results row: model label (default: the model path's last part)
    seed: int = 0  # sampling seed
    step: int = -1  # results row: training step (-1 = final / not applicable)
    limit: int | None = None  # evaluate only the first N problems of each set
    max_new_tokens: int | None = None  # override the protocol's generation budget
    n_samples: int | None = None  # override n of the protocol's sampled decodes
    batch_size: int = 8  # prompts per generate() call (hf backend)
    grade_workers: int | None = None  # grading processes (0 = in-process; none = all CPUs)
    grade_timeout_s: float = 5.0  # wall-clock limit per graded item
    threads: int = 1  # torch CPU threads
    dtype: str = "auto"  # model dtype: auto | float32 | bfloat16 | float16
    device: str = "auto"  # auto (cuda if available) | cpu | cuda


def load_model(model: str, dtype: str, device: str):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    dev = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
    torch_dtype = {"auto": "auto", "float32": torch.float32, "bfloat16": torch.bfloat16,
                   "float16": torch.float16}.get(dtype)
    if torch_dtype is None:
        raise ValueError(f"--dtype: unknown dtype {dtype!r} (auto | float32 | bfloat16 | float16)")
    tok = AutoTokenizer.from_pretrained(model)
    mdl = AutoModelForCausalLM.from_pretrained(model, dtype=torch_dtype).to(dev)
    mdl.eval()
    return mdl, tok


def rows_for(metrics: dict[str, dict[str, float]], args: EvalArgs) -> list[dict[str, Any]]:
    """Long-format result rows (paper, method, model, dataset, seed, step, metric, value)."""
    from repro.results import make_row

    model_name = args.model_name or Path(args.model.rstrip("/")).name
    return [
        make_row(args.paper, args.method, model_name, ds, args.seed, args.step, metric, value)
        for ds, m in metrics.items()
        for metric, value in m.items()
    ]


def main(argv: Sequence[str] | None = None) -> dict[str, dict[str, float]]:
    import torch

    from benchmarks.math.datasets import load_problems, write_jsonl
    from repro.cli import parse_dataclass
    from repro.provenance import utc_now
    from repro.results import write_run

    args = parse_dataclass(EvalArgs, argv)
    started = utc_now()
    torch.set_num_threads(max(1, args.threads))
    torch.manual_seed(args.seed)
    proto = get_protocol(args.protocol, args.n_samples)  # fail fast on a bad name
    if args.backend not in ("hf", "vllm"):
        raise SystemExit(f"--backend: unknown backend {args.backend!r} (hf | vllm)")
    data = {name: load_problems(name, args.source, args.data_dir, limit=args.limit) for name in args.datasets}
    if args.backend == "hf":
        model, tok = load_model(args.model, args.dtype, args.device)
    else:
        from transformers import AutoTokenizer

        from benchmarks.math.generation import load_vllm

        tok, model = AutoTokenizer.from_pretrained(args.model), load_vllm(args.model, seed=args.seed, dtype=args.dtype)
    thr: dict = {}
    metrics, samples = evaluate_model(
        model, tok, data, proto, args.template, backend=args.backend, batch_size=args.batch_size,
        seed=args.seed, max_new_tokens=args.max_new_tokens, grade_workers=args.grade_workers,
        grade_timeout_s=args.grade_timeout_s, progress=True, stats=thr,
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_jsonl(samples, out / "samples.jsonl")
    write_run(out, rows_for(metrics, args), config=args, seed=args.seed, started=started,
              extra={"protocol": asdict(proto), "max_new_tokens": args.max_new_tokens or proto.max_new_tokens,
                     "throughput": thr, "num_samples": len(samples)})
    for ds, m in metrics.items():
        print(f"{ds}: " + ", ".join(f"{k}={v:.4f}" for k, v in sorted(m.items())), flush=True)
    print(f"generation: {thr['gen_tokens_per_s']:.1f} tokens/s over {thr['gen_tokens']} tokens; "
          f"grading {thr['grade_seconds']:.1f} s", flush=True)
    return metrics


if __name__ == "__main__":
    main()
