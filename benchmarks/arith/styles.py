"""Solution styles of the nano testbed (v2): the planted premise that RL, EMPO and EM can elicit.

The papers' premise is a base model that already holds a reliable way of solving a problem and uses it only
part of the time (DESIGN.md, "The nano testbed"). The SFT corpus therefore writes each solution in one of two
marked styles:

* ``careful`` -- ``Steps: `` then the worked chain, one operation per rewrite, then the boxed value::

      Steps: 12 + 7 × 8 - 5 = 12 + 56 - 5 = 68 - 5 = 63
      \\boxed{63}

  Each step is one small operation, which the nano model executes reliably.
* ``quick`` -- ``Quick: `` then the boxed value at once (``Quick: \\boxed{63}``): the whole computation in one
  jump, which a ~1M-parameter model cannot do reliably for several operations.

Which style a solution gets is drawn per problem with a probability that depends on the problem's *type*
(:func:`problem_type`: with or without a multiplication), so the model learns a habit -- e.g. mostly ``quick``
on problems with ``×`` -- that is unrelated to which style is right. This plants the premise only: nothing
in the data says which style is correct more often; the model's own skill decides that, and the ``nano``
table measures it (``acc_style_<style>``) before any method runs.

:func:`classify` maps a completion back to its style (``other`` for anything else), for the style
diagnostics of every stage.
"""
from __future__ import annotations

from collections.abc import Mapping

from benchmarks.arith.task import Token, render, solve_steps

STYLES = ("careful", "quick")
MARKERS = {"careful": "Steps: ", "quick": "Quick: "}
PROBLEM_TYPES = ("mul", "plain")  # with a multiplication / additions and subtractions only


def problem_type(tokens: list[Token]) -> str:
    """``mul`` if the expression contains a multiplication, else ``plain``."""
    return "mul" if "*" in tokens else "plain"


def problem_type_of_text(problem: str) -> str:
    """:func:`problem_type` from a problem statement (``Compute 3 × 4 + 1.``)."""
    return "mul" if "×" in problem else "plain"


def render_solution(tokens: list[Token], style: str, slips: Mapping[int, int] | None = None) -> str:
    """The solution text of ``tokens`` in ``style`` (see the module docstring); ``slips`` ({operation index:
    offset}) makes those operations of a ``careful`` chain come out wrong (:func:`benchmarks.arith.task.solve_steps`)."""
    if slips and style != "careful":
        raise ValueError(f"slips only exist in the careful style, got style {style!r}")
    steps = solve_steps(tokens, slips)
    value = steps[-1][0]
    if style == "careful":
        return f"{MARKERS['careful']}{' = '.join(render(s) for s in steps)}\n\\boxed{{{value}}}"
    if style == "quick":
        return f"{MARKERS['quick']}\\boxed{{{value}}}"
    raise ValueError(f"unknown solution style {style!r}; known: {list(STYLES)}")


def classify(completion: str) -> str:
    """The style of a completion: the marker it starts with (``careful`` / ``quick``), else ``other``."""
    text = completion.lstrip()
    for style, marker in MARKERS.items():
        if text.startswith(marker.rstrip()):
            return style
    return "other"


def style_shares(completions: list[str]) -> dict[str, float]:
    """Fraction of ``completions`` in each style (``STYLES`` and ``other``; all 0 for an empty list)."""
    n = len(completions)
    counts = {s: 0 for s in (*STYLES, "other")}
    for c in completions:
        counts[classify(c)] += 1
    return {s: (counts[s] / n if n else 0.0) for s in counts}


def style_accuracy(completions: list[str], successes: list[bool]) -> dict[str, tuple[int, int]]:
    """{style: (completions in that style, how many of them are right)} over ``STYLES`` and ``other``.

    The per-style accuracies a_c, a_q of one prompt's samples decide which style leads at a given success rate p:
    p = c a_c + (1 - c) a_q, so at p = 1/2 the ``careful`` share c exceeds 1/2 exactly when a_c + a_q < 1.
    """
    if len(completions) != len(successes):
        raise ValueError(f"{len(completions)} completions but {len(successes)} grades")
    out = {s: [0, 0] for s in (*STYLES, "other")}
    for c, ok in zip(completions, successes):
        cell = out[classify(c)]
        cell[0] += 1
        cell[1] += int(bool(ok))
    return {s: (n, r) for s, (n, r) in out.items()}


def marker_probabilities(model, tokenizer, prompts: list[str], temperature: float = 1.0) -> list[dict[str, float]]:
    """P(the completion opens with each style's marker) under ``model`` at ``temperature``, per prompt.

    The completion is tokenized the way the SFT corpus writes it (``" " + marker``, separately from the prompt,
    as in :func:`benchmarks.arith.train_nano.encode_sft`); the probability is the product over the marker's
    tokens of softmax(logits / temperature), the full-vocabulary distribution sampling draws from (no top-p).
    This is the style choice itself, before any answer is written: on one prompt EM sees it as the same
    distribution in every rollout, so its sign (which marker is ahead) is what sharpening reinforces.
    """
    import torch

    out = []
    for prompt in prompts:
        p_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        row = {}
        for style in STYLES:
            m_ids = tokenizer(" " + MARKERS[style], add_special_tokens=False)["input_ids"]
            ids = torch.tensor([p_ids + m_ids])
            with torch.no_grad():
                logits = model(input_ids=ids).logits[0, len(p_ids) - 1:-1].double() / temperature
            logp = torch.log_softmax(logits, dim=-1).gather(1, torch.tensor(m_ids)[:, None]).sum()
            row[style] = float(logp.exp())
        out.append(row)
    return out


def careful_marker_share(probs: dict[str, float]) -> float:
    """P(careful) / (P(careful) + P(quick)) from :func:`marker_probabilities` (nan if both are 0): the careful
    marker's share of the two-way choice; above 1/2 means ``careful`` is the prompt's majority style."""
    total = probs["careful"] + probs["quick"]
    return probs["careful"] / total if total > 0 else float("nan")
