"""The papers' headline claims as data: claim -> measured effect, comparison, threshold -> verdict.

Each :class:`Claim` names the table it reads, says the claim in words, quotes the paper's effect, and has an
``effect`` function that returns the per-run values of our effect grouped in strata (datasets or MetaWorld
tasks; runs = seeds), e.g. GRPO minus base accuracy per seed. :func:`judge` turns them into a verdict:

* ``reproduced``: the 95% stratified-bootstrap CI of the mean effect lies on the claimed side of the threshold;
* ``not reproduced``: the CI lies on the other side;
* ``inconclusive``: the CI contains the threshold.

With a single run there is no CI: the verdict then comes from the point estimate and says so (``n = 1``).
``kind="within"`` claims (the early law fit predicting the ceiling) need the CI inside ``(-threshold,
threshold)``; ``kind="not_below"`` claims (no method below its BC start, issue 14's rule) fail only when the CI
lies below 0. That is a check for harm, not evidence of a gain: when such a claim passes with a CI that contains the
threshold, its reason says so and gives the lower end.
A new claim is one entry in :data:`CLAIMS`; the report renders the list as its first table.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd

from repro import stats

Tables = dict[str, pd.DataFrame | None]
Strata = list[np.ndarray]


@dataclass(frozen=True)
class Claim:
    paper: str  # table the effect is read from
    text: str  # the claim in words
    paper_effect: str  # what the paper reports
    effect: Callable[[Tables], Strata | None]  # our effect: per-run values in strata, None if not measurable
    threshold: float = 0.0
    kind: str = "greater"  # greater | less | within | not_below
    unit: str = "pp"  # pp (x100 for display) | ratio | nats | raw
    why_not: Callable[[Tables], str] | None = None  # a measured reason, shown when not reproduced
    caveat: Callable[[Tables], str] | None = None  # a measured caveat, shown when reproduced ('' = none)


@dataclass(frozen=True)
class Verdict:
    claim: Claim
    mean: float | None
    ci: tuple[float, float] | None
    n_runs: int
    verdict: str  # reproduced | not reproduced | inconclusive | not run
    reason: str


# ----------------------------------------------------------------------------------------------- table access
def _rows(t: Tables, table: str, method: str, metric: str, dataset: str | None = None,
          step: int = -1) -> pd.DataFrame:
    df = t.get(table)
    if df is None or df.empty:
        return pd.DataFrame(columns=["seed", "dataset", "value"])
    sel = (df["method"] == method) & (df["metric"] == metric) & (df["step"] == step)
    if dataset is not None:
        sel &= df["dataset"] == dataset
    return df[sel]


def per_seed(t: Tables, table: str, method: str, metric: str, dataset: str | None = None,
             step: int = -1) -> dict[int, float]:
    """{seed: value} of one method/metric/dataset/step (mean over datasets when ``dataset`` is None)."""
    r = _rows(t, table, method, metric, dataset, step)
    r = r[r["seed"] >= 0]  # (load_table stores "no seed" -- pooled fits -- as -1)
    return {int(s): float(g["value"].mean()) for s, g in r.groupby("seed")}


def last_step(t: Tables, table: str, method: str, metric: str, dataset: str | None = None) -> dict[int, float]:
    """{seed: value} at the final row (step -1), else at the last evaluated step of each seed."""
    fin = per_seed(t, table, method, metric, dataset)
    if fin:
        return fin
    df = t.get(table)
    if df is None or df.empty:
        return {}
    r = df[(df["method"] == method) & (df["metric"] == metric) & (df["seed"] >= 0) & (df["step"] >= 0)]
    if dataset is not None:
        r = r[r["dataset"] == dataset]
    return {int(s): float(g[g["step"] == g["step"].max()]["value"].mean()) for s, g in r.groupby("seed")}


def paired(a: dict[int, float], b: dict[int, float]) -> np.ndarray:
    """a - b on the seeds both have; b with one run (e.g. the base model) is subtracted from every seed of a."""
    if len(b) == 1 and len(a) >= 1:
        (only,) = b.values()
        return np.array([v - only for _, v in sorted(a.items())])
    common = sorted(set(a) & set(b))
    return np.array([a[s] - b[s] for s in common])


def _one(values: np.ndarray) -> Strata | None:
    return [values] if values.size else None


def diff(table: str, method: str, base: str, metric: str, dataset: str | None, step_a: int = -1,
         step_b: int = -1, base_table: str | None = None) -> Callable[[Tables], Strata | None]:
    """Effect = method - base per seed (paired by seed; a one-run base is subtracted from every seed)."""
    return lambda t: _one(paired(per_seed(t, table, method, metric, dataset, step_a),
                                 per_seed(t, base_table or table, base, metric, dataset, step_b)))


def ratio(table: str, method: str, num: str, den: str) -> Callable[[Tables], Strata | None]:
    def f(t):
        a, b = per_seed(t, table, method, num), per_seed(t, table, method, den)
        common = sorted(set(a) & set(b))
        return _one(np.array([a[s] / b[s] for s in common if b[s]]))
    return f


def value(table: str, method: str, metric: str, pooled: bool = True) -> Callable[[Tables], Strata | None]:
    """A fitted quantity: the pooled row (seed empty) or the per-seed rows."""
    def f(t):
        r = _rows(t, table, method, metric)
        r = r[r["seed"] < 0] if pooled else r[r["seed"] >= 0]
        return _one(r["value"].to_numpy(dtype=float))
    return f


def ppl_task_diffs(t: Tables, method: str, base: str, kind: str = "heterogeneous") -> list[tuple[str, np.ndarray]]:
    """(dataset, method - base final success paired by seed) for each ``kind`` dataset where both ran."""
    df = t.get("ppl")
    if df is None or df.empty:
        return []
    out = []
    for ds in sorted(d for d in df["dataset"].unique() if d.endswith("/" + kind)):
        v = paired(per_seed(t, "ppl", method, "success", ds), per_seed(t, "ppl", base, "success", ds))
        if v.size:
            out.append((ds, v))
    return out


def ppl_diff(method: str, base: str, kind: str = "heterogeneous") -> Callable[[Tables], Strata | None]:
    """Per MetaWorld task (a stratum): method - base final success, paired by seed, on ``kind`` datasets."""
    return lambda t: [v for _, v in ppl_task_diffs(t, method, base, kind)] or None


def early_ceiling_gap(t: Tables) -> Strata | None:
    """Early-fit ceiling minus GRPO's final validation accuracy, per seed (both on the validation split)."""
    ceil = per_seed(t, "entropy_mechanism", "grpo", "law_early_ceiling")
    df = t.get("entropy_mechanism")
    if df is None or not ceil:
        return None
    v = df[(df["method"] == "grpo") & (df["metric"] == "val_acc") & (df["step"] >= 0)]
    last = {int(s): float(g.sort_values("step")["value"].iloc[-1]) for s, g in v.groupby("seed")}
    return _one(paired(ceil, last))


# ------------------------------------------------------------------------------------------ measured reasons
def _em_reason(t: Tables) -> str:
    """What EM moved between step 0 and step 10 on arith_test (the same problems): the sampled and greedy
    `careful` shares and the greedy accuracy of each style."""
    def mean(metric, step):
        v = per_seed(t, "one_shot_em", "one_shot_em", metric, "arith_test", step)
        return 100 * float(np.mean(list(v.values()))) if v else None

    c0, c10 = mean("style_share_careful_greedy", 0), mean("style_share_careful_greedy", 10)
    if c0 is None or c10 is None:
        return ""
    parts = []
    share = _marker_share(t, "one_shot_em")
    own = f"the base model's `careful`-marker share on that prompt at T_s: {share:.2f}" if share is not None else ""
    s0, s10 = mean("style_share_careful_t1", 0), mean("style_share_careful_t1", 10)
    if s0 is not None and s10 is not None:
        m0, m10 = mean("style_share_careful_t1_mul", 0), mean("style_share_careful_t1_mul", 10)
        mul = f" (x problems {m0:.0f}% -> {m10:.0f}%)" if m0 is not None and m10 is not None else ""
        parts.append(f"EM moves the sampled style towards the selected prompt's majority{f' ({own})' if own else ''}: "
                     f"`careful` share at T = 1 {s0:.0f}% at step 0 -> {s10:.0f}% at step 10{mul}")
    elif own:
        parts.append(own)
    parts.append(f"greedy `careful` share {c0:.0f}% -> {c10:.0f}%")
    q0, q10 = mean("acc_style_quick_greedy", 0), mean("acc_style_quick_greedy", 10)
    k0, k10 = mean("acc_style_careful_greedy", 0), mean("acc_style_careful_greedy", 10)
    if None not in (q0, q10, k0, k10):
        parts.append(f"greedy accuracy of `quick` answers {q0:.0f}% -> {q10:.0f}%, of `careful` {k0:.0f}% -> {k10:.0f}%")
    acc = per_seed(t, "one_shot_em", "one_shot_em", "acc_greedy", "arith_test", 10)
    if len(acc) > 1 and len(set(acc.values())) == 1:
        parts.append(f"the {len(acc)} seeds give the same greedy accuracy (10 Adam steps at lr 2e-5 move the "
                     f"weights almost seed-independently), so the CI has no seed spread")
    ctl0 = per_seed(t, "one_shot_em", "em_confident", "acc_greedy", "arith_test", 0)
    ctl10 = per_seed(t, "one_shot_em", "em_confident", "acc_greedy", "arith_test", 10)
    if ctl0 and ctl10:
        parts.append(f"control, not the paper's choice: the same EM on the pool's most reliably answered prompt "
                     f"(`em_confident`, {len(ctl10)} seeds) goes {100 * np.mean(list(ctl0.values())):.1f}% -> "
                     f"{100 * np.mean(list(ctl10.values())):.1f}%, so EM amplifies the chosen prompt's majority "
                     f"behaviour and the variance criterion picks prompts whose majority is the unreliable style")
    ranks = _rank_sentence(t)
    if ranks:
        parts.append(ranks)
    return "; ".join(parts) + " (arith_test, mean over seeds)"


def _rank_sentence(t: Tables, only_if_split: bool = False) -> str:
    """What the prompt-rank runs say about the prompt the rule picks ('' without them): EM's step S - step 0 on each
    of the top-ranked prompts, and whether the sign depends on the pick (some reach +3 pp, others do not). With
    ``only_if_split`` it is '' unless it does -- the caveat of a reproduced verdict that one lucky pick made."""
    step, ranks = _rank_deltas(t)
    if not ranks:
        return ""
    d = 100 * np.asarray(list(ranks.values()))
    k = int((d >= 3).sum())
    if only_if_split and k in (0, len(d)):
        return ""
    lead = ("not a matter of which near-tied prompt the rule picks" if k == 0 else
            "the same on whichever near-tied prompt the rule picks" if k == len(d) else
            "which near-tied prompt the rule picks decides the outcome")
    agree = marker_sign_agreement(t, ranks)
    follows = (f"; the sign of each of these changes is that of the base model's `careful`-marker share on its prompt "
               f"minus 1/2 (the style choice EM sharpens, at T_s) in {agree[0]} of {agree[1]}" if agree else "")
    sums = {r: _style_sum(t, rank_method(r)) for r in ranks}
    sums = {r: v for r, v in sums.items() if v is not None}
    if sums:
        over = sum(1 for v in sums.values() if v >= 1 - 1e-9)
        follows += (f"; in the selection samples (k at T_s) `careful` and `quick` accuracy sum to 1 or more on "
                    f"{over} of {len(sums)} of these prompts (range {min(sums.values()):.2f}-{max(sums.values()):.2f}), "
                    f"and at p = 1/2 `careful` leads only where that sum is below 1")
    return (f"{lead}: the same EM on each of the {len(d)} highest-variance prompts (`em_rank<r>`, 1 seed each; rank "
            f"1 = the main run) gives step {step} - step 0 from {d.min():+.1f} to {d.max():+.1f} pp ({k} of {len(d)} "
            f"reach +3; arith_test){follows}")


def rank_method(r: int) -> str:
    """The run name of prompt rank ``r`` (1 = the main run)."""
    return "one_shot_em" if r == 1 else f"em_rank{r}"


def _marker_share(t: Tables, method: str) -> float | None:
    """Mean over seeds of the base model's careful-marker share on ``method``'s prompt (None when not recorded)."""
    share = per_seed(t, "one_shot_em", method, "selection_p_careful_marker", "prompt", 0)
    return float(np.mean(list(share.values()))) if share else None


def _style_sum(t: Tables, method: str) -> float | None:
    """a_c + a_q: the accuracy of the `careful` plus that of the `quick` selection samples of ``method``'s prompt
    (mean over seeds; None when either is not recorded, e.g. no sample took that style)."""
    a_c = per_seed(t, "one_shot_em", method, "selection_acc_careful", "prompt", 0)
    a_q = per_seed(t, "one_shot_em", method, "selection_acc_quick", "prompt", 0)
    if not a_c or not a_q:
        return None
    return float(np.mean(list(a_c.values())) + np.mean(list(a_q.values())))


def marker_sign_agreement(t: Tables, ranks: dict[int, float]) -> tuple[int, int] | None:
    """(runs whose accuracy change has the sign of the prompt's careful-marker share - 1/2, runs compared) over the
    rank runs ``ranks`` {rank: change} that record the share (None when none do; a change of exactly 0 never
    agrees)."""
    shares = {r: _marker_share(t, rank_method(r)) for r in ranks}
    pairs = [(shares[r] - 0.5, delta) for r, delta in ranks.items() if shares[r] is not None]
    if not pairs:
        return None
    return sum(1 for m, d in pairs if m * d > 0), len(pairs)


def _rank_deltas(t: Tables) -> tuple[int, dict[int, float]]:
    """(step, {rank: greedy arith_test accuracy at step - step 0}) of the prompt-sensitivity runs: step is the last
    step the rank runs evaluate greedily (config one_shot_em.ranks.steps), rank 1 = the main run at that step (mean
    over its seeds); step 0 is the base model, the same for every prompt."""
    from repro.report.tables import RANK_RUN, rank_step

    df = t.get("one_shot_em")
    if df is None or df.empty:
        return 0, {}
    base = per_seed(t, "one_shot_em", "one_shot_em", "acc_greedy", "arith_test", 0)
    step = rank_step(df)
    if not base or step is None:
        return 0, {}
    b = float(np.mean(list(base.values())))
    out = {}
    for m in sorted(set(df["method"])):
        match = RANK_RUN.match(m)
        r = 1 if m == "one_shot_em" else int(match.group(1)) if match else None  # inverse of rank_method
        v = per_seed(t, "one_shot_em", m, "acc_greedy", "arith_test", step) if r is not None else {}
        if v:
            out[r] = float(np.mean(list(v.values()))) - b
    return (step, out) if len(out) > 1 else (step, {})


def _law_reason(t: Tables, frac: float = 0.15) -> str:
    """What the early fit saw: per GRPO seed, the first ``frac`` of the law's points (as fit_law fits them: each
    validation with its rollout's entropy), and the resulting ceiling gaps."""
    g = early_ceiling_gap(t)
    if not g:
        return ""
    from repro.report.tables import law_pairs

    per_seed = ", ".join(f"{100 * float(x):+.0f}" for x in g[0])
    acc0, acc1, h0, h1, n_fit, last_step, monotone, after = [], [], [], [], [], [], [], []
    df = t.get("entropy_mechanism")
    for steps, h, r in (law_pairs(df, "grpo") if df is not None else {}).values():
        k = max(3, int(np.ceil(frac * len(r))))
        acc0.append(r[0])
        acc1.append(r[k - 1])
        h0.append(h[0])
        h1.append(h[k - 1])
        last_step.append(int(steps[k - 1]))
        n_fit.append(k)
        monotone.append(bool(np.all(np.diff(h[:k]) < 0)))
        after.append(((h[k - 1], r[k - 1]), (h[-1], r[-1])))  # the window's last point and the run's last
    if not n_fit:
        return f"early ceiling - final validation accuracy per seed = {per_seed} pp"
    pts = f"{min(n_fit)}" if min(n_fit) == max(n_fit) else f"{min(n_fit)}-{max(n_fit)}"
    d_acc, d_h = 100 * (np.mean(acc1) - np.mean(acc0)), np.mean(h0) - np.mean(h1)
    slope = (f", {d_acc / (100 * d_h):.0f} pp per 0.01 nat, a slope the early fit extrapolates to H = 0"
             if d_h > 0 else ", so the early slope a is ill-determined")
    return (f"in the fit window ({pts} validation points per seed, updates 0-{max(last_step)}) validation accuracy "
            f"rises {100 * np.mean(acc0):.0f}% -> {100 * np.mean(acc1):.0f}% while the paired entropy goes "
            f"{np.mean(h0):.3f} -> {np.mean(h1):.3f} nats (means over seeds; falling at every point in "
            f"{sum(monotone)} of {len(monotone)} seeds){slope}; early ceiling - final validation accuracy per seed = "
            f"{per_seed} pp" + _plateau(t, after))


def _plateau(t: Tables, after: list) -> str:
    """After the fit window (its last point to the run's last, mean over seeds): how far the paired entropy still
    falls and how much validation accuracy moves, with the RMSE of the law fitted on all points."""
    if not after:
        return ""
    (h0, r0), (h1, r1) = (np.mean([x[i] for x in after], axis=0) for i in (0, 1))
    rmse = value(EM, "grpo", "law_fit_rmse")(t)
    fit = f" (the law fitted on all points: RMSE {100 * float(rmse[0][0]):.1f} pp)" if rmse else ""
    text = (f"; after the window the paired entropy goes {h0:.3f} -> {h1:.3f} nats while validation accuracy moves "
            f"{100 * (r1 - r0):+.1f} pp{fit}")
    if h1 < h0 and abs(r1 - r0) < 0.02:  # the law would have the score rise with every fall of the entropy
        text += (", so accuracy is not one exponential function of entropy on this testbed: it saturates within "
                 "the window, then entropy keeps falling at a flat score")
    return text


def _style_reason(table: str, a: str, b: str, dataset: str = "arith_test") -> Callable[[Tables], str]:
    """Where two LLM methods' greedy answers differ on ``dataset``: the `careful` share (all problems and those
    with a multiplication) and the accuracy of the `careful` answers (mean over seeds)."""
    def f(t):
        def mean(method, metric):
            v = per_seed(t, table, method, metric, dataset)
            return 100 * float(np.mean(list(v.values()))) if v else None

        keys = (("style_share_careful_greedy", "greedy careful share"),
                ("style_share_careful_greedy_mul", "on x problems"),
                ("acc_style_careful_greedy", "accuracy of careful answers"))
        parts, gaps = [], {}
        for metric, label in keys:
            x, y = mean(a, metric), mean(b, metric)
            if x is not None and y is not None:
                parts.append(f"{label} {x:.1f}% vs {y:.1f}%")
                gaps[metric] = abs(x - y)
        if not parts:
            return ""
        same_style = "style_share_careful_greedy" in gaps and gaps["style_share_careful_greedy"] < 1.0
        return (f"{a} vs {b} on {dataset} (greedy, mean over seeds): " + "; ".join(parts)
                + (": both choose the same style, so the difference lies within the careful style" if same_style
                   else ": the methods differ in the style they choose"))
    return f


def _consensus_reason(t: Tables, dataset: str = "arith_test") -> str:
    """How often the base model's consensus is wrong although a right answer is sampled (the nano table's base
    maj@k and pass@k at T = 1): there EMPO's label-free reward favours the consensus, GRPO's gold reward the right
    answer, so that share bounds what EMPO can learn from the base model's own agreement."""
    df = t.get("nano")
    if df is None:
        return ""
    r = df[(df["method"] == "base") & (df["dataset"] == dataset) & (df["step"] == -1)]
    for k in (8, 4):
        maj, pas = r[r["metric"] == f"maj@{k}_t1"]["value"], r[r["metric"] == f"pass@{k}_t1"]["value"]
        if not maj.empty and not pas.empty:
            m, p = 100 * float(maj.mean()), 100 * float(pas.mean())
            return (f"the base model's {k} samples at T = 1 agree on the right answer (maj@{k}) on {m:.1f}% of "
                    f"{dataset} and contain it (pass@{k}) on {p:.1f}%: on the other {p - m:.1f}% a right answer is "
                    f"sampled but outvoted, where EMPO's reward (the answer's cluster share) favours the wrong "
                    f"consensus and GRPO's gold reward the right answer")
    return ""


def _empo_reason(t: Tables) -> str:
    return "; ".join(x for x in (_style_reason(EP, "empo", "grpo")(t), _consensus_reason(t)) if x)


def _order_reason(t: Tables) -> str:
    a = last_step(t, "one_shot_em", "em_then_rl", "acc_greedy", "arith_test")
    b = last_step(t, "one_shot_em", "rl_then_em", "acc_greedy", "arith_test")
    if not a or not b:
        return ""
    ca = last_step(t, "one_shot_em", "em_then_rl", "style_share_careful_greedy", "arith_test")
    cb = last_step(t, "one_shot_em", "rl_then_em", "style_share_careful_greedy", "arith_test")
    share = (f"; greedy careful share {100 * np.mean(list(ca.values())):.0f}% vs {100 * np.mean(list(cb.values())):.0f}%"
             if ca and cb else "")
    n = min(len(a), len(b))
    seeds = "one seed each" if n == 1 else f"{n} seeds each, mean"
    return (f"{seeds}: EM->RL {100 * np.mean(list(a.values())):.1f}% vs RL->EM {100 * np.mean(list(b.values())):.1f}%"
            f"{share}; both are GRPO runs on the same budget, so both end near GRPO's accuracy")


def _skew_reason(t: Tables) -> str:
    """Base vs EM skewness on each model's own samples (the paper's measure), then, where measured, EM's logits on
    the base model's samples (``logit_skewness_on_reference``: the same steps, so the logit shift without the change
    in what the model writes) against the base's, paired by seed."""
    a = per_seed(t, "one_shot_em", "one_shot_em", "logit_skewness")
    b = per_seed(t, "one_shot_em", "base", "logit_skewness")
    if not a or not b:
        return ""
    mb, ma = float(np.mean(list(b.values()))), float(np.mean(list(a.values())))
    # "barely" only for a change small against the level (the nano logits' skewness is ~5)
    how = ("EM on one prompt barely moves them" if abs(ma - mb) < 0.05 else
           f"EM {'lowers' if ma < mb else 'raises'} it by {abs(ma - mb):.3f}")
    text = f"skewness {mb:.3f} (base) vs {ma:.3f} (EM): the nano model's logits are already highly skewed and {how}"
    on_ref = per_seed(t, "one_shot_em", "one_shot_em", "logit_skewness_on_reference")
    d = np.asarray([on_ref[s] - b[s] for s in sorted(on_ref) if s in b])
    if d.size:
        text += (f" on its own samples; on the base model's samples (the same steps) EM's logits give "
                 f"{float(np.mean([on_ref[s] for s in on_ref])):.3f}, {float(d.mean()):+.3f} against the base "
                 f"(higher in {int((d > 0).sum())} of {d.size} seeds), so the measure on each model's own samples "
                 f"also reflects which steps EM's samples contain (EM changes what the model writes)")
    return text


def _ppl_reason(method: str, base: str, kind: str = "heterogeneous") -> Callable[[Tables], str]:
    """Per-task differences with their seed range, and for the contrastive methods where their mean action went
    (the behaviour gap ||mu - mu_b||^2 from the BC start to the end, and the error on the preferred segments)."""
    def f(t):
        diffs = ppl_task_diffs(t, method, base, kind)
        if not diffs:
            return ""
        text = "per-task mean differences (pp): " + "; ".join(
            f"{ds.split('/')[0]} {100 * v.mean():+.0f} (seeds {100 * v.min():+.0f} to {100 * v.max():+.0f})"
            for ds, v in diffs)
        if method not in ("cpl", "ppl"):
            return text
        df = t["ppl"]

        def mean(ds, metric, start):  # the BC start's row has the positive step bc_steps, the end's step -1
            r = df[(df["method"] == method) & (df["dataset"] == ds) & (df["metric"] == metric)]
            r = r[r["step"] > 0] if start else r[r["step"] == -1]
            return float(r["value"].mean()) if not r.empty else None

        drift = []
        for ds, _ in diffs:
            g0, g1 = mean(ds, "behavior_gap", True), mean(ds, "behavior_gap", False)
            p0, p1 = mean(ds, "action_mse_preferred", True), mean(ds, "action_mse_preferred", False)
            if None not in (g0, g1, p0, p1):
                drift.append(f"{method.upper()} {ds.split('/')[0]}: gap {g0:.2f} -> {g1:.2f}, "
                             f"preferred {p0:.2f} -> {p1:.2f}")
        if drift:
            text += ("; where the mean action went from the BC start to the end (squared distance to the behaviour "
                     "mean, and to the preferred segments' actions): " + "; ".join(drift))
        if method == "ppl":
            text += _ppl_terms(df, [ds for ds, _ in diffs])
        return text
    return f


def _ppl_terms(df: pd.DataFrame, datasets: list[str], small: float = 0.25) -> str:
    """How much of PPL's segment score is its behaviour-policy KL: the two terms at the end of training (the
    diagnostic pairs' mean over segments, pooled over ``datasets`` and seeds). A KL term small against the
    log-prob term (below ``small`` of its size) makes PPL's logit nearly CPL's, so the two methods can only differ a
    little; the sentence says so only then."""
    r = df[(df["method"] == "ppl") & (df["dataset"].isin(datasets)) & (df["step"] == -1)]
    lp, kl = r[r["metric"] == "score_logp"]["value"], r[r["metric"] == "score_kl"]["value"]
    if lp.empty or kl.empty or float(lp.mean()) == 0:
        return ""
    a, b = float(lp.mean()), float(kl.mean())
    share = abs(b / a)
    verdict = " and PPL's logit is mostly CPL's" if share < small else ""
    return (f"; PPL's two score terms at the end: alpha sum log pi {a:.2f}, lam sum KL {b:.2f} per segment, so the "
            f"behaviour-policy KL is {100 * share:.0f}% of the log-prob term's size{verdict} (lam chosen on the "
            f"sweep task)")


# ----------------------------------------------------------------------------------------------------- claims
EM, EP, OS, PP = "entropy_mechanism", "empo", "one_shot_em", "ppl"
CLAIMS: list[Claim] = [
    Claim(EM, "GRPO: policy entropy collapses (final / initial < 0.5)",
          "entropy falls steeply early (~73% of the drop in the first 1/12 of training)",
          ratio(EM, "grpo", "entropy_final", "entropy_initial"), 0.5, "less", "ratio"),
    Claim(EM, "GRPO: accuracy rises as entropy falls, R = -a exp(H) + b with a > 0", "a > 0 on every model",
          value(EM, "grpo", "law_a"), 0.0, "greater", "raw"),
    Claim(EM, "The law fitted on the first 15% of training predicts the final accuracy (within 5 pp)",
          "early-fit predictions match the later trajectory",
          early_ceiling_gap, 0.05, "within", "pp", _law_reason),
    Claim(EM, "Clip-Cov keeps entropy higher than GRPO", "entropy stays above GRPO's",
          diff(EM, "clip_cov", "grpo", "entropy_final", None), 0.0, "greater", "nats"),
    Claim(EM, "KL-Cov keeps entropy higher than GRPO", "entropy stays above GRPO's",
          diff(EM, "kl_cov", "grpo", "entropy_final", None), 0.0, "greater", "nats"),
    Claim(EM, "Clip-Cov beats GRPO in accuracy", "+1.8 pp (7B), +4.5 pp (32B), avg of 7 sets",
          diff(EM, "clip_cov", "grpo", "acc_greedy", "arith_test"), why_not=_style_reason(EM, "clip_cov", "grpo")),
    Claim(EM, "KL-Cov beats GRPO in accuracy", "+2.0 pp (7B), +6.4 pp (32B), avg of 7 sets",
          diff(EM, "kl_cov", "grpo", "acc_greedy", "arith_test"), why_not=_style_reason(EM, "kl_cov", "grpo")),
    Claim(EP, "EMPO (no labels) improves on the base model", "+9.6 pp (1.5B), +17.9 pp (7B), avg of 5 sets",
          diff(EP, "empo", "base", "acc_greedy", "arith_test")),
    Claim(EP, "EMPO is within 5 pp of GRPO with gold labels", "-0.2 pp (1.5B), -0.1 pp (7B)",
          diff(EP, "empo", "grpo", "acc_greedy", "arith_test"), -0.05, "greater", why_not=_empo_reason),
    Claim(OS, "One-shot EM: accuracy after ~10 steps above the start", "+24.7 pp avg of 4 sets (Qwen2.5-Math-7B)",
          diff(OS, "one_shot_em", "one_shot_em", "acc_greedy", "arith_test", 10, 0), 0.0, "greater", "pp",
          _em_reason, caveat=lambda t: _rank_sentence(t, only_if_split=True)),
    Claim(OS, "EM then RL ends at least as high as RL then EM", "EM->RL keeps the gain, RL->EM degrades",
          lambda t: _one(paired(last_step(t, OS, "em_then_rl", "acc_greedy", "arith_test"),
                                last_step(t, OS, "rl_then_em", "acc_greedy", "arith_test"))), 0.0, "greater", "pp",
          _order_reason),
    Claim(OS, "EM makes the logits more right-skewed", "skewness rises after EM (and falls after RL)",
          diff(OS, "one_shot_em", "base", "logit_skewness", None), 0.0, "greater", "raw", _skew_reason),
    Claim(PP, "PPL >= CPL on heterogeneous datasets", "PPL > CPL, clearest on heterogeneous data",
          ppl_diff("ppl", "cpl"), 0.0, "greater", "pp", _ppl_reason("ppl", "cpl")),
    Claim(PP, "CPL >= SFT on heterogeneous datasets", "CPL > SFT on MetaWorld with dense preferences (CPL paper)",
          ppl_diff("cpl", "sft"), 0.0, "greater", "pp", _ppl_reason("cpl", "sft")),
    Claim(PP, "CPL >= P-IQL on heterogeneous datasets", "CPL >= P-IQL on most MetaWorld tasks (CPL paper)",
          ppl_diff("cpl", "piql"), 0.0, "greater", "pp", _ppl_reason("cpl", "piql")),
    # on both dataset kinds: the must-show (issue 14) is "no method below its BC start, averaged over tasks"
    *[Claim(PP, f"{m.upper() if m != 'piql' else 'P-IQL'} does not end below its BC start ({kind})",
            "preference fine-tuning improves on BC", ppl_diff(m, "bc", kind), 0.0, "not_below", "pp",
            _ppl_reason(m, "bc", kind))
      for kind in ("heterogeneous", "homogeneous") for m in ("cpl", "piql", "ppl")],
]


# ---------------------------------------------------------------------------------------------------- judging
def judge(claim: Claim, tables: Tables, reps: int = 2000, confidence: float = 0.95, seed: int = 0) -> Verdict:
    """The verdict of one claim on the tables (see the module docstring)."""
    strata = claim.effect(tables)
    strata = [np.asarray(s, dtype=float)[np.isfinite(s)] for s in strata] if strata else None
    strata = [s for s in strata if s.size] if strata else None
    if not strata:
        return Verdict(claim, None, None, 0, "not run", "")
    summ = stats.summarize(strata, reps, confidence, seed)
    lo, hi = (summ.ci_low, summ.ci_high) if summ.ci_low is not None else (summ.mean, summ.mean)
    t = claim.threshold
    if claim.kind == "greater":
        v = "reproduced" if lo > t else "not reproduced" if hi < t else "inconclusive"
    elif claim.kind == "less":
        v = "reproduced" if hi < t else "not reproduced" if lo > t else "inconclusive"
    elif claim.kind == "within":
        v = "reproduced" if -t < lo and hi < t else "not reproduced" if hi < -t or lo > t else "inconclusive"
    elif claim.kind == "not_below":
        v = "not reproduced" if hi < t else "reproduced"
    else:
        raise ValueError(f"claim {claim.text!r}: unknown kind {claim.kind!r}")
    if v != "reproduced":
        reason = claim.why_not(tables) if claim.why_not else ""
    else:
        reason = claim.caveat(tables) if claim.caveat else ""
        if claim.kind == "not_below" and summ.ci_low is not None and lo <= t:  # passed: the CI reaches t
            reason = "; ".join(r for r in (_not_below_caveat(lo, t, claim.unit), reason) if r)
    return Verdict(claim, summ.mean, None if summ.ci_low is None else (lo, hi), summ.n_runs, v, reason)


def _not_below_caveat(lo: float, threshold: float, unit: str) -> str:
    """What a passed ``not_below`` claim whose CI contains the threshold does and does not show."""
    return (f"no drop shown, no gain either: the CI contains {_fmt(threshold, unit)}, so the runs are also "
            f"consistent with a drop down to {_fmt(lo, unit)}")


def judge_all(tables: Tables, reps: int = 2000, confidence: float = 0.95, seed: int = 0) -> list[Verdict]:
    return [judge(c, tables, reps, confidence, seed) for c in CLAIMS]


def _fmt(x: float, unit: str) -> str:
    if unit == "pp":
        return f"{100 * x:+.1f} pp"
    if unit == "ratio":
        return f"{x:.2f}"
    return f"{x:+.3f}" if unit == "nats" else f"{x:.3g}"


def effect_text(v: Verdict) -> str:
    if v.mean is None:
        return "–"
    u = v.claim.unit
    ci = f" [{_fmt(v.ci[0], u)}, {_fmt(v.ci[1], u)}]" if v.ci else ""
    return f"{_fmt(v.mean, u)}{ci} (n={v.n_runs})"


def markdown(verdicts: list[Verdict], titles: dict[str, str]) -> str:
    """The claims table: paper, claim, the paper's effect, ours with CI and runs, verdict, measured reason."""
    rows = ["| paper | claim | paper's effect | ours (95% CI, runs) | verdict | measured reason |",
            "|---|---|---|---|---|---|"]
    for v in verdicts:
        cells = [titles.get(v.claim.paper, v.claim.paper), v.claim.text, v.claim.paper_effect, effect_text(v),
                 v.verdict if v.verdict == "not run" else f"**{v.verdict}**",
                 v.reason or ("" if v.verdict == "reproduced" else "–")]
        rows.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    counts = {k: sum(v.verdict == k for v in verdicts) for k in ("reproduced", "not reproduced", "inconclusive", "not run")}
    summary = ", ".join(f"{n} {k}" for k, n in counts.items() if n)
    return "\n".join(rows) + f"\n\n{len(verdicts)} claims: {summary}.\n"
