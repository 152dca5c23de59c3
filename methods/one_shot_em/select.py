"""Entry point: pick the one-shot EM prompt from a pool by variance (``selection.rank_pool_with_model``).

    python -m methods.one_shot_em.select --model work/tiny/nano/model --data-dir work/tiny/data/arith \
        --pool arith_unlabeled --k 32 --temperature 0.5 --top-p 0.95 --out work/tiny/one_shot_em/selected.json

The k samples are drawn from the distribution EM itself samples from: by default the EM rollout
temperature T_s = 0.5 and top_p 0.95 (the workflow passes the tier's ``sample_temperature`` /
``top_p`` unless ``select.temperature`` is set). A prompt whose answers vary at T = 1 can be
near-deterministic at T_s, and then EM has nothing to minimise. The spec (one_shot_em.md, "Prompt
selection") fixes k (8 on GPU) but not the temperature; the public code never shipped this step.

Selection is the only step of One-shot EM that uses answers. The arith ``unlabeled`` split stores no
answers (answer = null), so ``--labels arith_oracle`` computes them from the problem text with a
safe integer evaluator, *only* for grading the selection samples; ``--labels column`` uses the
pool's own ``answer`` column (e.g. a labelled pool such as numina20k or arith_rl_train).
Writes the chosen row (+ score) to ``--out``, the full ranking next to it, ``<out>_control.json``: the
control prompt of the ``em_confident`` diagnostic (:func:`control_prompt`), and with ``--ranks R`` the prompts
ranked 2..R as ``<out>_rank<r>.json`` (the prompt-sensitivity runs ``em_rank<r>``).

On the arith testbed every record also carries ``p_careful_marker``: the base model's share of the ``careful``
marker in the two-way style choice at the selection temperature (benchmarks.arith.styles.careful_marker_share).
It is a diagnostic, not part of the rule: on one prompt EM sharpens whichever marker is ahead.
"""
from __future__ import annotations

import ast
import operator
from dataclasses import asdict, dataclass
from pathlib import Path

from repro.io import iter_jsonl

__all__ = ["SelectArgs", "arith_oracle_answer", "control_prompt", "read_pool", "select", "main"]

_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul}


def arith_oracle_answer(problem: str) -> str:
    """Exact value of an arith problem "Compute <expr>." (ints, + - ×, parentheses) as a string.

    Raises ValueError for any other content (no eval of arbitrary code)."""
    text = problem.strip()
    if not (text.startswith("Compute ") and text.endswith(".")):
        raise ValueError(f"not an arith problem: {problem!r}")
    expr = text[len("Compute "):-1].replace("×", "*")

    def ev(node):
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant) and type(node.value) is int:
            return node.value
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -ev(node.operand)
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            return _OPS[type(node.op)](ev(node.left), ev(node.right))
        raise ValueError(f"unsupported syntax in arith problem: {problem!r}")

    return str(ev(ast.parse(expr, mode="eval")))


def read_pool(path: Path, limit: int | None = None) -> list[dict]:
    """Rows of an (unlabeled) pool JSONL: ``problem`` required, ``answer`` may be null.

    (benchmarks.math.datasets.load_problems insists on an answer, which the unlabeled split lacks.)
    """
    rows = []
    try:
        lines = path.read_text().splitlines()
    except OSError as e:
        raise ValueError(f"{path}: cannot read the selection pool ({e})") from e
    for i, obj in iter_jsonl(lines, str(path)):
        if not isinstance(obj.get("problem"), str) or not obj["problem"].strip():
            raise ValueError(f"{path}:{i}: missing or empty 'problem'")
        rows.append(obj)
        if limit is not None and len(rows) >= limit:
            break
    if not rows:
        raise ValueError(f"{path}: empty selection pool")
    return rows


@dataclass
class SelectArgs:
    """Variance-based selection of the one-shot EM prompt."""

    model: str  # path or hub id of the model that samples
    out: str  # JSON file for the selected prompt (ranking goes to <out stem>_ranking.jsonl)
    data_dir: str | None = None  # local directory with <pool>.jsonl
    pool: str = "arith_unlabeled"  # dataset name of the candidate pool
    pool_limit: int | None = 64  # consider the first N problems of the pool (None = all)
    labels: str = "arith_oracle"  # arith_oracle (compute from problem text) | column (use 'answer')
    k: int = 8  # samples per candidate
    temperature: float = 0.5  # sampling temperature of the k samples (default: EM's T_s)
    top_p: float = 0.95  # nucleus of the k samples (default: EM's rollout top_p)
    max_new_tokens: int = 128  # response length cap
    template: str = "plain"  # prompt template
    top: int = 5  # how many top prompts to list in the ranking summary
    ranks: int = 1  # also write the prompts ranked 2..ranks as <out stem>_rank<r>.json (1 = only the winner)
    seed: int = 0  # sampling seed
    threads: int = 1  # torch CPU threads
    batch_size: int = 32  # prompts per generation batch
    style_markers: bool | None = None  # record each prompt's careful-marker share (nano styles); None: with arith_oracle

    def check(self) -> "SelectArgs":
        if self.labels not in ("arith_oracle", "column"):
            raise ValueError(f"SelectArgs.labels must be arith_oracle or column, got {self.labels!r}")
        if self.k < 1:
            raise ValueError(f"SelectArgs.k must be >= 1, got {self.k}")
        if self.temperature <= 0:
            raise ValueError(f"SelectArgs.temperature must be > 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"SelectArgs.top_p must be in (0, 1], got {self.top_p}")
        if self.ranks < 1:
            raise ValueError(f"SelectArgs.ranks must be >= 1, got {self.ranks}")
        return self


def control_prompt(pool: list[dict], ranked: list) -> object:
    """The control prompt of the ``em_confident`` diagnostic: of the scored prompts, the one the k samples
    answered right most often (all k when any prompt is), the earliest in pool order among ties. Its
    variance is ~0, the opposite of the paper's choice: it shows what EM amplifies when the model's
    confident behaviour is the right one."""
    key = lambda r: (r.get("id"), r["problem"])  # noqa: E731  (the ranking holds copies of the pool rows)
    order = {key(r): i for i, r in enumerate(pool)}
    return min(ranked, key=lambda s: (-s.accuracy, order.get(key(s.row), len(pool))))


def _style_record(scored) -> dict:
    """The selection samples of one prompt by style (arith testbed): the careful share and each style's accuracy
    (a_c, a_q; None when no sample took that style). At p = 1/2, careful leads exactly when a_c + a_q < 1."""
    from benchmarks.arith.styles import style_accuracy

    counts = style_accuracy(scored.completions, scored.successes)
    k = len(scored.completions)
    rec = {"careful_share_samples": counts["careful"][0] / k if k else None}
    for style in ("careful", "quick"):
        n, right = counts[style]
        rec[f"acc_{style}_samples"] = right / n if n else None
    return rec


def select(args: SelectArgs) -> dict:
    """Rank the pool and write the winner; returns the selected row with its score."""
    args.check()
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from benchmarks.math.generation import Sampling, generate
    from benchmarks.math.grading import grade_many
    from benchmarks.math.prompts import build_prompt
    from methods.one_shot_em.selection import rank_pool_with_model
    from repro.io import atomic_write_json, write_jsonl

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rows = read_pool(Path(args.data_dir or ".") / f"{args.pool}.jsonl", args.pool_limit)
    if args.ranks > len(rows):
        raise ValueError(f"SelectArgs.ranks={args.ranks} asks for more prompts than the pool {args.pool} has "
                         f"({len(rows)} with pool_limit={args.pool_limit})")
    pool = []
    for i, r in enumerate(rows):
        r = dict(r)
        if args.labels == "arith_oracle":
            r["answer"] = arith_oracle_answer(r["problem"])
        elif r.get("answer") in (None, ""):
            raise ValueError(f"{args.pool} row {i} (id={r.get('id')!r}): no 'answer' but labels=column")
        pool.append(r)
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    model = AutoModelForCausalLM.from_pretrained(args.model).eval()

    def sample(problems, k, temperature, seed):
        prompts = [build_prompt(p, args.template, tokenizer) for p in problems]
        sp = Sampling(n=k, temperature=temperature, top_p=args.top_p, max_new_tokens=args.max_new_tokens, seed=seed)
        out = generate(model, tokenizer, prompts, sp, backend="hf", batch_size=args.batch_size)
        return [[c.text for c in group] for group in out]

    ranked = rank_pool_with_model(pool, sample, lambda pairs: grade_many(pairs), k=args.k,
                                  temperature=args.temperature, seed=args.seed, top=None)
    marker = {}
    if args.style_markers or (args.style_markers is None and args.labels == "arith_oracle"):
        from benchmarks.arith.styles import careful_marker_share, marker_probabilities

        probs = marker_probabilities(model, tokenizer, [build_prompt(s.row["problem"], args.template, tokenizer)
                                                        for s in ranked], args.temperature)
        marker = {id(s): {"p_careful_marker": careful_marker_share(p), **_style_record(s)} for s, p in zip(ranked, probs)}

    def record(s, rank):
        return {**s.row, "score": s.score, "accuracy": s.accuracy, **marker.get(id(s), {}), "rank": rank, "k": args.k,
                "temperature": args.temperature, "top_p": args.top_p, "labels": args.labels, "config": asdict(args)}

    chosen = record(ranked[0], 1)
    out = Path(args.out)
    atomic_write_json(out, chosen)
    for r in range(2, args.ranks + 1):
        atomic_write_json(out.with_name(f"{out.stem}_rank{r}.json"), record(ranked[r - 1], r))
    control = control_prompt(pool, ranked)
    atomic_write_json(out.with_name(out.stem + "_control.json"),
                      {**control.row, "score": control.score, "accuracy": control.accuracy,
                       **marker.get(id(control), {}), "k": args.k,
                       "temperature": args.temperature, "top_p": args.top_p, "labels": args.labels,
                       "rule": "first pool prompt with the highest selection accuracy", "config": asdict(args)})
    write_jsonl(out.with_name(out.stem + "_ranking.jsonl"),
                [{"id": s.row.get("id"), "problem": s.row["problem"], "score": s.score, "accuracy": s.accuracy,
                  **marker.get(id(s), {})} for s in ranked])
    return chosen


def main(argv=None) -> None:
    from repro.cli import parse_dataclass

    chosen = select(parse_dataclass(SelectArgs, argv))
    print(f"selected {chosen.get('id')}: score={chosen['score']:.4f} acc={chosen['accuracy']:.3f}: {chosen['problem']}")


if __name__ == "__main__":
    main()
