"""What the report knows about each paper: the sections' headline metrics and baselines, and the published
rows of config/paper_tables.yaml (:class:`Paper`)."""
from __future__ import annotations

# What each paper's section shows: the headline metric (final, step -1), the baseline method of the
# effect table, and the per-step metrics drawn as curves.
LLM_PAPERS = ("entropy_mechanism", "empo", "one_shot_em")
PAPERS: dict[str, dict] = {
    "entropy_mechanism": {"metric": "acc_greedy", "baseline": "grpo"},
    "empo": {"metric": "acc_greedy", "baseline": "base"},
    # one-shot EM: the paper's headline is the checkpoint after ~10 optimiser steps
    "one_shot_em": {"metric": "acc_greedy", "baseline": "base", "baseline_from_step0": ("one_shot_em",),
                    "prefer_step": 10},
    "ppl": {"metric": "success", "baseline": "cpl"},
}
# Per-step accuracy curves: the engine logs validation accuracy as `val_acc`; evaluations at
# checkpoints (one-shot EM) log the harness's `acc_greedy`. The first one present is drawn.
SCORE_CURVES = ["val_acc", "val_acc_greedy", "acc_greedy"]
DATASET_ALIASES = {"amc": "amc23", "olympiad_bench": "olympiadbench", "omni-math": "omni_math"}


def _norm_model(name: str) -> str:
    """'Qwen/Qwen2.5-Math-7B' -> 'qwen2.5-math-7b' (the paper tables' row keys)."""
    return name.split("/")[-1].lower()


def _norm_dataset(name: str) -> str:
    n = name.lower()
    return DATASET_ALIASES.get(n, n)


class Paper:
    """The published rows of one paper (config/paper_tables.yaml)."""

    def __init__(self, entry: dict | None):
        self.entry = entry or {}
        self.columns = [_norm_dataset(c) for c in self.entry.get("columns", [])]
        self.rows = self.entry.get("rows", {}) or {}

    def value(self, model: str, method: str, dataset: str) -> float | None:
        row = self.rows.get(_norm_model(model), {}).get(method)
        d = _norm_dataset(dataset)
        if row is None or d not in self.columns:
            return None
        return float(row[self.columns.index(d)])

    def delta(self, model: str, method: str, baseline: str) -> float | None:
        """Paper's avg(method) - avg(baseline) in points, for one paper model."""
        r = self.rows.get(model, {})
        if method not in r or baseline not in r or "avg" not in self.columns:
            return None
        i = self.columns.index("avg")
        return float(r[method][i]) - float(r[baseline][i])
