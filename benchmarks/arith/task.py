"""Synthetic multi-step integer arithmetic with worked solutions ending in ``\\boxed{answer}``.

The nano testbed's task (DESIGN.md, "The nano testbed"): problems such as ``Compute 23 + 5 × (7 - 2).``
whose solution rewrites the expression one operation at a time, the way a step-by-step reasoning
trace would, and ends with the boxed value::

    23 + 5 × (7 - 2) = 23 + 5 × 5 = 23 + 25 = 48
    \\boxed{48}

Difficulty knobs (:class:`TaskSpec`): the number of operands, their digits, the operators
(``+``, ``-``, ``*`` rendered as ``×``), the digits of multiplication factors and the probability
of a pair of parentheses. Generation is deterministic given a ``random.Random`` seed.

An expression is a flat list of tokens: ``int`` values and the strings ``+ - * ( )``. Negative
numbers only appear in intermediate steps (e.g. ``3 - 8 + 2 = -5 + 2``); there they are single
number tokens, so the rendered text ``3 - -6`` is unambiguous (and is also valid Python).
"""
from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Union

Token = Union[int, str]
OPERATORS = ("+", "-", "*")
SYMBOL = {"+": "+", "-": "-", "*": "×"}


@dataclass(frozen=True)
class TaskSpec:
    """Difficulty knobs of one distribution of problems."""

    min_operands: int = 2  # fewest numbers in an expression (>= 2)
    max_operands: int = 4  # most numbers in an expression
    max_digits: int = 2  # operands have 1..max_digits digits (the digit count is drawn uniformly)
    operators: str = "+-"  # allowed operators, a subset of "+-*" ("*" is printed as ×)
    mul_digits: int = 1  # operands next to a "*" have at most this many digits
    paren_prob: float = 0.0  # probability of one pair of parentheses around a sub-expression
    max_mul: int | None = None  # at most this many multiplications per expression (None: no limit)
    plain_digits: int | None = None  # operands of an expression without "*" have 1..plain_digits digits (None: max_digits)
    mul_min_factor: int = 0  # operands next to a "*" are at least this (2: no trivial product by 0 or 1)

    def check(self, where: str = "TaskSpec") -> "TaskSpec":
        """Raise ValueError naming the field if a knob is out of range; return self."""
        if self.min_operands < 2:
            raise ValueError(f"{where}: min_operands must be >= 2, got {self.min_operands}")
        if self.max_operands < self.min_operands:
            raise ValueError(f"{where}: max_operands ({self.max_operands}) < min_operands ({self.min_operands})")
        if not 1 <= self.max_digits <= 6:
            raise ValueError(f"{where}: max_digits must be in 1..6, got {self.max_digits}")
        if not 1 <= self.mul_digits <= self.max_digits:
            raise ValueError(f"{where}: mul_digits must be in 1..max_digits, got {self.mul_digits}")
        bad = [c for c in self.operators if c not in OPERATORS]
        if not self.operators or bad:
            raise ValueError(f"{where}: operators must be a non-empty subset of '+-*', got {self.operators!r}")
        if not 0.0 <= self.paren_prob <= 1.0:
            raise ValueError(f"{where}: paren_prob must be in [0, 1], got {self.paren_prob}")
        if self.plain_digits is not None and not 1 <= self.plain_digits <= 6:
            raise ValueError(f"{where}: plain_digits must be in 1..6 or None, got {self.plain_digits}")
        if not 0 <= self.mul_min_factor <= 9:
            raise ValueError(f"{where}: mul_min_factor must be in 0..9, got {self.mul_min_factor}")
        if self.max_mul is not None and self.max_mul < 0:
            raise ValueError(f"{where}: max_mul must be >= 0 or None, got {self.max_mul}")
        return self


# ----------------------------------------------------------------------------- rendering

def render(tokens: list[Token]) -> str:
    """Expression tokens -> text: binary operators spaced, parentheses tight: ``23 + 5 × (7 - 2)``."""
    out = []
    for tok in tokens:
        if isinstance(tok, int):
            out.append(str(tok))
        elif tok in SYMBOL:
            out.append(f" {SYMBOL[tok]} ")
        else:
            out.append(tok)
    return "".join(out)


# ----------------------------------------------------------------------------- evaluation

def _apply(a: int, op: str, b: int) -> int:
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "*":
        return a * b
    raise ValueError(f"unknown operator {op!r}")


def _innermost_group(tokens: list[Token]) -> tuple[int, int]:
    """Indices (open, close) of the innermost parenthesised group, or (-1, len) for none."""
    if ")" not in tokens:
        return -1, len(tokens)
    close = tokens.index(")")
    open_ = max(i for i in range(close) if tokens[i] == "(")
    return open_, close


def reduce_once(tokens: list[Token], offset: int = 0) -> list[Token]:
    """Perform the next operation by the usual order (innermost parentheses, × before ±, left to right).

    Parentheses around a single number are dropped in the same step. Returns a new token list;
    a single number is returned unchanged. ``offset`` is added to the operation's result: 0 is the
    correct step, anything else a slip (:func:`solve_steps`'s ``slips``).
    """
    if len(tokens) == 1:
        return list(tokens)
    open_, close = _innermost_group(tokens)
    seg = tokens[open_ + 1:close]
    ops = [i for i in range(1, len(seg), 2)]
    mul = [i for i in ops if seg[i] == "*"]
    k = mul[0] if mul else ops[0]
    value = _apply(seg[k - 1], seg[k], seg[k + 1]) + offset  # type: ignore[arg-type]
    seg = seg[:k - 1] + [value] + seg[k + 2:]
    if open_ >= 0 and len(seg) == 1:  # "(5)" -> "5"
        return tokens[:open_] + seg + tokens[close + 1:]
    if open_ >= 0:
        return tokens[:open_ + 1] + seg + tokens[close:]
    return seg


def solve_steps(tokens: list[Token], slips: Mapping[int, int] | None = None) -> list[list[Token]]:
    """All expressions from the problem to its value: [problem, after 1 op, ..., [value]].

    ``slips``: {index of an operation (0 = the first): offset added to its result}. The later steps compute
    correctly from the slipped value, so the chain is consistent but its value is wrong -- the way a
    step-by-step solver's slip looks.
    """
    slips = slips or {}
    steps = [list(tokens)]
    while len(steps[-1]) > 1:
        steps.append(reduce_once(steps[-1], slips.get(len(steps) - 1, 0)))
    return steps


def evaluate(tokens: list[Token]) -> int:
    """The integer value of an expression."""
    return int(solve_steps(tokens)[-1][0])


# ----------------------------------------------------------------------------- generation

def sample_expression(rng: random.Random, spec: TaskSpec, n_operands: int | None = None) -> list[Token]:
    """Draw one expression from ``spec`` (optionally with a fixed number of operands)."""
    n = n_operands if n_operands is not None else rng.randint(spec.min_operands, spec.max_operands)
    ops = [rng.choice(spec.operators) for _ in range(n - 1)]
    if spec.max_mul is not None and ops.count("*") > spec.max_mul:
        # keep the first max_mul multiplications; the others become a drawn + or - (when allowed)
        others = [o for o in spec.operators if o != "*"] or ["+"]
        seen = 0
        for i, op in enumerate(ops):
            if op == "*":
                seen += 1
                if seen > spec.max_mul:
                    ops[i] = rng.choice(others)
    max_digits = spec.max_digits if "*" in ops or spec.plain_digits is None else spec.plain_digits
    values = []
    for i in range(n):
        next_to_mul = (i > 0 and ops[i - 1] == "*") or (i < n - 1 and ops[i] == "*")
        digits = rng.randint(1, spec.mul_digits if next_to_mul else max_digits)
        lo = 0 if digits == 1 else 10 ** (digits - 1)
        if next_to_mul:  # a no-op unless mul_min_factor is set: the draws stay those of the default
            lo = max(lo, spec.mul_min_factor)
        values.append(rng.randint(lo, 10 ** digits - 1))
    tokens: list[Token] = [values[0]]
    for op, v in zip(ops, values[1:]):
        tokens += [op, v]
    if n >= 3 and rng.random() < spec.paren_prob:
        # wrap operands a..b (2 <= length <= n-1) in one pair of parentheses
        length = rng.randint(2, n - 1)
        a = rng.randint(0, n - length)
        b = a + length - 1
        tokens = tokens[:2 * a] + ["("] + tokens[2 * a:2 * b + 1] + [")"] + tokens[2 * b + 1:]
    return tokens


def problem_text(tokens: list[Token]) -> str:
    """The problem statement given to the model."""
    return f"Compute {render(tokens)}."


def solution_text(tokens: list[Token]) -> str:
    """The worked solution: the chain of rewritten expressions, then the boxed value."""
    steps = solve_steps(tokens)
    chain = " = ".join(render(s) for s in steps)
    return f"{chain}\n\\boxed{{{steps[-1][0]}}}"


def make_problem(tokens: list[Token]) -> dict:
    """A problem dict (without id/source): problem, answer, solution, num_operands, type."""
    return {
        "problem": problem_text(tokens),
        "answer": str(evaluate(tokens)),
        "solution": solution_text(tokens),
        "num_operands": sum(isinstance(t, int) for t in tokens),
        "type": "mul" if "*" in tokens else "plain",
    }


def generate_unique(rng: random.Random, spec: TaskSpec, count: int, seen: set[str],
                    max_tries_factor: int = 50, keep_tokens: bool = False) -> list[dict]:
    """``count`` problems from ``spec`` whose text is not in ``seen`` (which is updated); with
    ``keep_tokens`` each row also carries its expression tokens (key ``tokens``).

    Raises ValueError if the distribution is too small to give that many distinct problems.
    """
    out: list[dict] = []
    tries = 0
    while len(out) < count:
        tries += 1
        if tries > max_tries_factor * max(count, 100):
            raise ValueError(f"only {len(out)} distinct problems after {tries} draws from {spec}; "
                             f"asked for {count}: widen the distribution or lower the split size")
        tokens = sample_expression(rng, spec)
        row = make_problem(tokens)
        if row["problem"] in seen:
            continue
        seen.add(row["problem"])
        if keep_tokens:
            row["tokens"] = tokens
        out.append(row)
    return out
