"""Write the arithmetic task's six splits as JSONL, in the math harness's dataset format.

    python -m benchmarks.arith.make_data --out-dir work/tiny/data/arith --seed 0

Files (one object per line: id, source, problem, answer, num_operands [, solution]):

- ``arith_sft.jsonl``        problems with worked solutions (SFT of the nano model), each in one solution
  style (``style`` field; :mod:`benchmarks.arith.styles`) drawn with a per-problem-type probability
- ``arith_rl_train.jsonl``   prompts with gold answers (RL training)
- ``arith_unlabeled.jsonl``  prompts only: ``answer`` is null (EMPO / entropy minimisation); the
  gold answers of these problems are deliberately not stored anywhere
- ``arith_val.jsonl``        in-distribution validation set (training curves and hyper-parameter choices, so
  the test sets are only used for the final numbers)
- ``arith_test.jsonl``       in-distribution test set
- ``arith_hard.jsonl``       harder test set: more operands than any training split

No problem text occurs in two splits. ``benchmarks.math.datasets.load_problems("arith_test",
local_dir=...)`` loads them exactly like ``math500``.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field, replace
from pathlib import Path

from benchmarks.arith.styles import PROBLEM_TYPES, STYLES, render_solution
from benchmarks.arith.task import TaskSpec, generate_unique

SPLITS = ("test", "hard", "val", "rl_train", "unlabeled", "sft")  # generation order: test sets first
FILES = {"sft": "arith_sft", "rl_train": "arith_rl_train", "unlabeled": "arith_unlabeled",
         "test": "arith_test", "hard": "arith_hard", "val": "arith_val"}


@dataclass
class MakeDataArgs:
    """Generate the arithmetic splits."""

    out_dir: str = "work/tiny/data/arith"  # directory for the six JSONL files
    seed: int = 0  # seed of the generator (each split uses its own stream derived from it)
    min_operands: int = 2  # fewest numbers per problem (training splits and test)
    max_operands: int = 4  # most numbers per problem (training splits and test)
    max_digits: int = 2  # operands have 1..max_digits digits
    operators: str = "+-"  # allowed operators, subset of "+-*" (* is printed as ×)
    mul_digits: int = 1  # factors next to × have at most this many digits
    paren_prob: float = 0.0  # probability of one pair of parentheses per problem
    max_mul: int | None = None  # at most this many multiplications per problem (None: no limit)
    plain_digits: int | None = None  # operands of a problem without × have 1..plain_digits digits (None: max_digits)
    mul_min_factor: int = 0  # factors next to × are at least this (2: the shortcut is never right by a product with 0 or 1)
    hard_min_operands: int = 5  # fewest numbers per problem in arith_hard (> max_operands)
    hard_max_operands: int = 6  # most numbers per problem in arith_hard
    n_sft: int = 60000  # problems with worked solutions
    n_rl_train: int = 2000  # problems with gold answers for RL
    n_unlabeled: int = 2000  # problems without answers
    n_test: int = 500  # in-distribution test problems
    n_hard: int = 500  # harder test problems
    n_val: int = 300  # validation problems (curves, hyper-parameter choices)
    styles: list[str] = field(default_factory=lambda: ["careful"])  # solution styles of the SFT corpus
    careful_share_mul: float = 1.0  # P(careful) for an SFT problem with a multiplication (2 styles)
    careful_share_plain: float = 1.0  # P(careful) for an SFT problem without one (2 styles)
    careful_slip: float = 0.0  # P(an operation of a careful SFT solution comes out one off, +1 or -1), per operation
    careful_slip_types: list[str] = field(default_factory=lambda: list(PROBLEM_TYPES))  # problem types whose careful chains slip

    def specs(self) -> dict[str, TaskSpec]:
        """The task distribution of each split (validated)."""
        base = TaskSpec(self.min_operands, self.max_operands, self.max_digits, self.operators,
                        self.mul_digits, self.paren_prob, self.max_mul, self.plain_digits,
                        self.mul_min_factor).check("make_data")
        if self.hard_min_operands <= self.max_operands:
            raise ValueError(f"make_data: hard_min_operands ({self.hard_min_operands}) must exceed "
                             f"max_operands ({self.max_operands}) so arith_hard is out of distribution")
        hard = replace(base, min_operands=self.hard_min_operands,
                       max_operands=self.hard_max_operands).check("make_data (hard split)")
        return {s: (hard if s == "hard" else base) for s in SPLITS}

    def style_share(self) -> dict[str, float]:
        """P(careful) per problem type (validated); a single style has share 1 or 0."""
        bad = [s for s in self.styles if s not in STYLES]
        if not self.styles or bad or len(set(self.styles)) != len(self.styles):
            raise ValueError(f"make_data: styles must be distinct names from {list(STYLES)}, got {self.styles}")
        if len(self.styles) == 1:
            share = 1.0 if self.styles[0] == "careful" else 0.0
            return {"mul": share, "plain": share}
        for name in ("careful_share_mul", "careful_share_plain"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"make_data: {name} must be in [0, 1], got {getattr(self, name)}")
        return {"mul": self.careful_share_mul, "plain": self.careful_share_plain}

    def slip(self) -> float:
        """P(slip) per careful operation (validated)."""
        if not 0.0 <= self.careful_slip < 0.5:
            raise ValueError(f"make_data: careful_slip must be in [0, 0.5) (the right result must stay the "
                             f"likelier one), got {self.careful_slip}")
        return self.careful_slip

    def slip_types(self) -> set[str]:
        """The problem types (``mul``, ``plain``) whose careful SFT chains get slips (validated)."""
        bad = [t for t in self.careful_slip_types if t not in PROBLEM_TYPES]
        if bad:
            raise ValueError(f"make_data: careful_slip_types must be a subset of {list(PROBLEM_TYPES)}, got "
                             f"{self.careful_slip_types}")
        return set(self.careful_slip_types)

    def sizes(self) -> dict[str, int]:
        sizes = {s: getattr(self, f"n_{s}") for s in SPLITS}
        for s, n in sizes.items():
            if n < 0:
                raise ValueError(f"make_data: n_{s} must be >= 0, got {n}")
        return sizes


def draw_slips(rng: random.Random, n_ops: int, rate: float) -> dict[int, int]:
    """{operation index: +1 or -1} for each of ``n_ops`` operations that slips (probability ``rate`` each).

    The sign is a fair coin, so the slips of one chain spread its wrong values on both sides of the right one:
    the right value stays the likeliest single answer of a careful chain (majority voting can find it),
    which a one-sided slip would break (three steps at rate 0.3: P(right) 0.34 < P(right + 1) 0.44).
    """
    if rate <= 0:
        return {}
    return {i: rng.choice((1, -1)) for i in range(n_ops) if rng.random() < rate}


def make_splits(args: MakeDataArgs) -> dict[str, list[dict]]:
    """All splits as lists of rows (deterministic in ``args``)."""
    specs, sizes, share, slip = args.specs(), args.sizes(), args.style_share(), args.slip()
    slip_types = args.slip_types()
    seen: set[str] = set()
    splits = {}
    for split in SPLITS:
        rng = random.Random(f"{args.seed}/{split}")
        style_rng = random.Random(f"{args.seed}/{split}/style")  # own stream: styles never change the problems
        slip_rng = random.Random(f"{args.seed}/{split}/slip")  # and slips never change the styles
        rows = generate_unique(rng, specs[split], sizes[split], seen, keep_tokens=split == "sft")
        name = FILES[split]
        out = []
        for i, row in enumerate(rows):
            item = {"id": f"{name}-{i}", "source": name, "problem": row["problem"],
                    "answer": row["answer"], "num_operands": row["num_operands"], "type": row["type"]}
            if split == "unlabeled":
                item["answer"] = None
            if split == "sft":
                style = "careful" if style_rng.random() < share[row["type"]] else "quick"
                item["style"] = style
                # drawn for every careful chain, so the types a chain may slip on never shift the other rows' slips
                slips = draw_slips(slip_rng, row["num_operands"] - 1, slip) if style == "careful" else {}
                if row["type"] not in slip_types:
                    slips = {}
                item["solution"] = render_solution(row["tokens"], style, slips)
                if slips:
                    item["slips"] = sorted(slips.items())  # [[operation index, offset], ...]
            out.append(item)
        splits[split] = out
    return splits


def write_splits(args: MakeDataArgs) -> dict[str, Path]:
    """Generate and write every split; returns split -> file path."""
    from repro.io import write_jsonl

    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for split, rows in make_splits(args).items():
        paths[split] = write_jsonl(out_dir / f"{FILES[split]}.jsonl", rows)
    return paths


def main(argv=None) -> None:
    from repro.cli import parse_dataclass

    args = parse_dataclass(MakeDataArgs, argv)
    paths = write_splits(args)
    for split, path in paths.items():
        print(f"{split}: {getattr(args, f'n_{split}')} problems -> {path}")


if __name__ == "__main__":
    main()
