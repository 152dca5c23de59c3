"""The declarative claims (repro/report/claims.py): effects from tables, verdicts from bootstrap CIs."""
import numpy as np
import pandas as pd
import pytest

from repro.report import claims as C
from repro.report.tables import TABLES


def _table(rows):
    return pd.DataFrame(rows, columns=["paper", "method", "model", "dataset", "seed", "step", "metric", "value"])


def _em(grpo, base):
    """entropy_mechanism-like rows: grpo per seed and a one-run base."""
    rows = [("x", "grpo", "m", "arith_test", s, -1, "acc_greedy", v) for s, v in enumerate(grpo)]
    rows += [("x", "base", "m", "arith_test", 0, -1, "acc_greedy", base)]
    return {"t": _table(rows)}


@pytest.mark.parametrize("grpo,base,verdict", [
    ([0.90, 0.91, 0.92], 0.40, "reproduced"),
    ([0.30, 0.31, 0.29], 0.40, "not reproduced"),
    ([0.35, 0.45, 0.40], 0.40, "inconclusive"),
])
def test_greater_claim_verdicts_follow_the_ci(grpo, base, verdict):
    claim = C.Claim("t", "grpo beats base", "+", C.diff("t", "grpo", "base", "acc_greedy", "arith_test"))
    v = C.judge(claim, _em(grpo, base), reps=500)
    assert v.verdict == verdict
    assert v.n_runs == 3 and v.mean == pytest.approx(np.mean(grpo) - base)
    assert v.ci[0] <= v.mean <= v.ci[1]


def test_one_run_gives_a_point_estimate_and_missing_rows_not_run():
    claim = C.Claim("t", "grpo beats base", "+", C.diff("t", "grpo", "base", "acc_greedy", "arith_test"))
    v = C.judge(claim, _em([0.9], 0.4))
    assert v.verdict == "reproduced" and v.ci is None and v.n_runs == 1
    assert C.judge(claim, {"t": None}).verdict == "not run"
    assert "n=1" in C.effect_text(v)


def test_less_within_and_not_below_kinds():
    t = {"t": _table([("x", "a", "m", "d", s, -1, "r", v) for s, v in enumerate([0.2, 0.25, 0.22])])}
    eff = C.value("t", "a", "r", pooled=False)
    assert C.judge(C.Claim("t", "", "", eff, 0.5, "less", "ratio"), t).verdict == "reproduced"
    assert C.judge(C.Claim("t", "", "", eff, 0.1, "less", "ratio"), t).verdict == "not reproduced"
    assert C.judge(C.Claim("t", "", "", eff, 0.3, "within"), t).verdict == "reproduced"
    assert C.judge(C.Claim("t", "", "", eff, 0.1, "within"), t).verdict == "not reproduced"
    neg = {"t": _table([("x", "a", "m", "d", s, -1, "r", -v) for s, v in enumerate([0.2, 0.25, 0.22])])}
    assert C.judge(C.Claim("t", "", "", eff, 0.0, "not_below"), neg).verdict == "not reproduced"
    assert C.judge(C.Claim("t", "", "", eff, 0.0, "not_below"), t).verdict == "reproduced"
    with pytest.raises(ValueError, match="unknown kind"):
        C.judge(C.Claim("t", "", "", eff, 0.0, "sideways"), t)


def test_not_below_passed_across_zero_says_it_shows_no_gain():
    eff = C.value("t", "a", "r", pooled=False)
    across = {"t": _table([("x", "a", "m", "d", s, -1, "r", v) for s, v in enumerate([-0.3, 0.05, -0.1])])}
    v = C.judge(C.Claim("t", "", "", eff, 0.0, "not_below", "pp"), across)
    assert v.verdict == "reproduced" and v.ci[0] < 0 < v.ci[1]
    assert "no gain" in v.reason and f"{100 * v.ci[0]:+.1f} pp" in v.reason
    above = {"t": _table([("x", "a", "m", "d", s, -1, "r", v) for s, v in enumerate([0.2, 0.25, 0.22])])}
    assert C.judge(C.Claim("t", "", "", eff, 0.0, "not_below", "pp"), above).reason == ""


def test_ppl_effects_are_stratified_by_task_and_paired_by_seed():
    rows = []
    for task, (cpl, ppl) in {"door-open": ([0.5, 0.6], [0.7, 0.8]), "sweep-into": ([0.2, 0.1], [0.2, 0.2])}.items():
        for s in range(2):
            rows.append(("ppl", "cpl", "g", f"{task}/heterogeneous", s, -1, "success", cpl[s]))
            rows.append(("ppl", "ppl", "g", f"{task}/heterogeneous", s, -1, "success", ppl[s]))
            rows.append(("ppl", "ppl", "g", f"{task}/homogeneous", s, -1, "success", 0.0))  # other kind: ignored
    strata = C.ppl_diff("ppl", "cpl")({"ppl": _table(rows)})
    assert len(strata) == 2
    np.testing.assert_allclose(strata[0], [0.2, 0.2])
    np.testing.assert_allclose(strata[1], [0.0, 0.1])


def test_every_paper_has_claims_and_the_real_claims_run_on_empty_tables():
    assert {c.paper for c in C.CLAIMS} == {"entropy_mechanism", "empo", "one_shot_em", "ppl"} <= set(TABLES)
    verdicts = C.judge_all({t: None for t in TABLES})
    assert all(v.verdict == "not run" for v in verdicts)
    md = C.markdown(verdicts, {})
    assert md.count("\n| ") == len(C.CLAIMS) and md.startswith("| paper |") and "not run" in md


def test_measured_reasons_read_the_tables():
    """The style reason compares careful shares and careful accuracy; the PPL reason names each task with its seed
    range and the subject's drift; the law reason counts the fit window and checks the entropy's monotonicity."""
    rows = []
    for s in range(2):
        for m, share, acc in (("a", 1.0, 0.8), ("b", 1.0, 0.9)):
            rows += [("x", m, "n", "arith_test", s, -1, "style_share_careful_greedy", share),
                     ("x", m, "n", "arith_test", s, -1, "acc_style_careful_greedy", acc)]
    text = C._style_reason("x", "a", "b")({"x": _table(rows)})
    assert "greedy careful share 100.0% vs 100.0%" in text and "80.0% vs 90.0%" in text and "same style" in text
    rows = [r if r[6] != "style_share_careful_greedy" or r[1] != "a" else (*r[:7], 0.5) for r in rows]
    assert "differ in the style" in C._style_reason("x", "a", "b")({"x": _table(rows)})

    rows = []
    for s, (c, f) in enumerate([(0.9, 0.5), (0.7, 0.5)]):
        rows += [("ppl", "cpl", "g", "door-open/heterogeneous", s, -1, "success", c),
                 ("ppl", "sft", "g", "door-open/heterogeneous", s, -1, "success", f),
                 ("ppl", "cpl", "g", "door-open/heterogeneous", s, 30, "behavior_gap", 0.02),
                 ("ppl", "cpl", "g", "door-open/heterogeneous", s, -1, "behavior_gap", 0.3),
                 ("ppl", "cpl", "g", "door-open/heterogeneous", s, 30, "action_mse_preferred", 0.4),
                 ("ppl", "cpl", "g", "door-open/heterogeneous", s, -1, "action_mse_preferred", 0.5)]
    text = C._ppl_reason("cpl", "sft")({"ppl": _table(rows)})
    assert "door-open +30 (seeds +20 to +40)" in text and "CPL door-open: gap 0.02 -> 0.30, preferred 0.40 -> 0.50" in text

    rows = []
    for s in range(2):
        rows.append(("entropy_mechanism", "grpo", "n", "val", s, -1, "law_early_ceiling", 0.95))
        for i, step in enumerate(range(0, 101, 4)):
            rows.append(("entropy_mechanism", "grpo", "n", "val", s, step, "val_acc", 0.4 if step == 0 else 0.9))
            rows.append(("entropy_mechanism", "grpo", "n", "val", s, step + 1, "entropy", 0.1 - 0.001 * i * (s == 0)))
    text = C._law_reason({"entropy_mechanism": _table(rows)})
    assert "4 validation points per seed, updates 0-12" in text and "40% -> 90%" in text
    assert "falling at every point in 1 of 2 seeds" in text  # seed 1's entropy is constant
    assert "333 pp per 0.01 nat" in text  # +50 pp over a mean fall of 0.0015 nats
    assert "+5, +5 pp" in text
    # after the window (step 12 -> 100): seed 0's entropy 0.097 -> 0.075, seed 1's constant 0.1; accuracy flat
    assert "entropy goes 0.099 -> 0.088 nats while validation accuracy moves +0.0 pp" in text
    assert "not one exponential function" in text
    assert "RMSE" not in text  # no pooled fit row in these tables
    # with fit_law's k row (4 steps per rollout) each validation takes its rollout's mean entropy
    rows = [("entropy_mechanism", "grpo", "n", "val", None, -1, "law_steps_per_rollout", 4.0),
            ("entropy_mechanism", "grpo", "n", "val", 0, -1, "law_early_ceiling", 0.95)]
    rows += [("entropy_mechanism", "grpo", "n", "val", 0, s, "entropy", 0.2 - 0.002 * s) for s in range(1, 101)]
    rows += [("entropy_mechanism", "grpo", "n", "val", 0, v, "val_acc", 0.4 if v == 0 else 0.9)
             for v in range(0, 101, 4)]
    text = C._law_reason({"entropy_mechanism": _table(rows)})
    assert "entropy goes 0.195 -> 0.171 nats" in text  # rollouts 0 and 3: steps 1-4 and 13-16

    rows = [("nano", "base", "n", "arith_test", s, -1, m, v) for s in range(2)
            for m, v in (("maj@8_t1", 0.6 + 0.02 * s), ("pass@8_t1", 0.85), ("maj@4_t1", 0.1))]
    assert ("(maj@8) on 61.0% of arith_test and contain it (pass@8) on 85.0%: on the other 24.0% a right answer"
            in C._consensus_reason({"nano": _table(rows)}))
    assert C._consensus_reason({"nano": _table(rows[:1])}) == ""  # no pass@k row: nothing to say


def test_em_reason_reads_the_prompt_rank_runs():
    """The EM reason quotes the spread of step 10 - step 0 over the main run (rank 1) and the em_rank<r> runs."""
    rows = []
    for s in range(2):
        rows += [("one_shot_em", "one_shot_em", "n", "arith_test", s, 0, "acc_greedy", 0.40),
                 ("one_shot_em", "one_shot_em", "n", "arith_test", s, 10, "acc_greedy", 0.36)]
        rows += [("one_shot_em", "one_shot_em", "n", "arith_test", s, st, "style_share_careful_greedy", 0.3)
                 for st in (0, 10)]
    t = {"one_shot_em": _table(rows)}
    assert "highest-variance" not in C._em_reason(t)  # no rank runs: nothing to say
    rows += [("one_shot_em", "em_rank2", "n", "arith_test", 0, 10, "acc_greedy", 0.45),
             ("one_shot_em", "em_rank3", "n", "arith_test", 0, 10, "acc_greedy", 0.38)]
    t = {"one_shot_em": _table(rows)}
    step, deltas = C._rank_deltas(t)
    assert step == 10 and deltas == pytest.approx({1: -0.04, 2: 0.05, 3: -0.02})
    assert "each of the 3 highest-variance prompts" in C._em_reason(t) and "from -4.0 to +5.0 pp (1 of 3 reach +3" in C._em_reason(t)
    # one prompt gains, two do not: the pick decides it (not "not a matter of which prompt")
    assert "which near-tied prompt the rule picks decides the outcome" in C._em_reason(t)
    assert "careful`-marker share" not in C._em_reason(t)  # no recorded shares: no claim about them
    # shares recorded: rank 1 (-4.0) with quick ahead agrees, rank 2 (+5.0) with careful ahead agrees, rank 3 (-2.0)
    # with careful ahead does not
    rows += [("one_shot_em", m, "n", "prompt", s, 0, "selection_p_careful_marker", v)
             for m, v, seeds in [("one_shot_em", 0.4, (0, 1)), ("em_rank2", 0.7, (0,)), ("em_rank3", 0.55, (0,))]
             for s in seeds]
    reason = C._em_reason({"one_shot_em": _table(rows)})
    assert "minus 1/2 (the style choice EM sharpens, at T_s) in 2 of 3" in reason
    assert "share on that prompt at T_s: 0.40" in reason
    assert "not a matter of" not in C._em_reason(t)
    assert "sum to 1 or more" not in reason  # per-style selection accuracies not recorded: nothing said
    # a_c + a_q recorded: 1.0 + 0.3 (seed 0) and 1.0 + 0.1 (seed 1) -> 1.2 for rank 1, 0.6 + 0.1 for rank 2; rank 3
    # has no quick sample (acc_quick absent) and is left out
    rows += [("one_shot_em", m, "n", "prompt", s, 0, metric, v)
             for m, s, metric, v in [("one_shot_em", 0, "selection_acc_careful", 1.0),
                                     ("one_shot_em", 0, "selection_acc_quick", 0.3),
                                     ("one_shot_em", 1, "selection_acc_careful", 1.0),
                                     ("one_shot_em", 1, "selection_acc_quick", 0.1),
                                     ("em_rank2", 0, "selection_acc_careful", 0.6),
                                     ("em_rank2", 0, "selection_acc_quick", 0.1),
                                     ("em_rank3", 0, "selection_acc_careful", 0.9)]]
    reason = C._em_reason({"one_shot_em": _table(rows)})
    assert "sum to 1 or more on 1 of 2 of these prompts (range 0.70-1.20)" in reason
    # rank runs of another length (ranks.steps = 5): the main run is compared at that step, not at 10
    rows = [r for r in rows if not r[1].startswith("em_rank")]
    rows += [("one_shot_em", "one_shot_em", "n", "arith_test", s, 5, "acc_greedy", 0.41) for s in range(2)]
    rows += [("one_shot_em", "em_rank2", "n", "arith_test", 0, 5, "acc_greedy", 0.43)]
    step, deltas = C._rank_deltas({"one_shot_em": _table(rows)})
    assert step == 5 and deltas == pytest.approx({1: 0.01, 2: 0.03})
    assert "gives step 5 - step 0 from +1.0 to +3.0 pp" in C._em_reason({"one_shot_em": _table(rows)})


def test_ppl_reason_weighs_the_kl_term_against_the_log_prob_term():
    """PPL vs CPL: the reason quotes PPL's two score terms at the end, pooled over the compared datasets only."""
    rows = []
    for s in range(2):
        for m, v in (("ppl", 0.7), ("cpl", 0.8)):
            rows.append(("ppl", m, "g", "door-open/heterogeneous", s, -1, "success", v))
        rows += [("ppl", "ppl", "g", "door-open/heterogeneous", s, -1, "score_logp", -4.0 + s),
                 ("ppl", "ppl", "g", "door-open/heterogeneous", s, -1, "score_kl", 0.35),
                 ("ppl", "ppl", "g", "door-open/heterogeneous", s, 3000, "score_kl", 9.0),  # the start: not used
                 ("ppl", "ppl", "g", "door-open/homogeneous", s, -1, "score_kl", 9.0)]  # other kind: not used
    text = C._ppl_reason("ppl", "cpl")({"ppl": _table(rows)})
    assert "alpha sum log pi -3.50, lam sum KL 0.35" in text and "KL is 10% of the log-prob term" in text
    assert "mostly CPL's" in text
    assert "score terms" not in C._ppl_reason("cpl", "sft")({"ppl": _table(rows)})
    rows = [(*r[:7], 2.0) if r[6] == "score_kl" and r[5] == -1 and "heterogeneous" in r[3] else r for r in rows]
    text = C._ppl_reason("ppl", "cpl")({"ppl": _table(rows)})  # a KL term of 57% of the log-prob term
    assert "KL is 57% of the log-prob term's size (lam" in text and "mostly CPL's" not in text


def test_a_reproduced_em_verdict_that_one_pick_made_carries_the_rank_caveat():
    """EM gains on the drawn prompt (rank 1) but not on rank 2: the verdict is reproduced, with the caveat; when every
    ranked prompt gains, there is no caveat; a failing verdict keeps its measured reason."""
    (claim,) = [c for c in C.CLAIMS if c.text.startswith("One-shot EM: accuracy after")]

    def tables(rank2):
        rows = [("one_shot_em", "one_shot_em", "n", "arith_test", s, st, "acc_greedy", v)
                for s in range(3) for st, v in ((0, 0.40), (10, 0.52 + 0.01 * s))]
        rows += [("one_shot_em", "em_rank2", "n", "arith_test", 0, 10, "acc_greedy", rank2)]
        return {"one_shot_em": _table(rows)}

    split = C.judge(claim, tables(0.30), reps=200)
    assert split.verdict == "reproduced"
    assert "decides the outcome" in split.reason and "(1 of 2 reach +3" in split.reason
    both = C.judge(claim, tables(0.50), reps=200)
    assert both.verdict == "reproduced" and both.reason == ""
    rows = [r for r in tables(0.30)["one_shot_em"].itertuples(index=False)]
    rows = [r if r[5] == 0 or r[1] != "one_shot_em" else r[:7] + (0.35,) for r in rows]  # the main run loses 5 pp
    rows += [("one_shot_em", "one_shot_em", "n", "arith_test", s, st, "style_share_careful_greedy", 0.3)
             for s in range(3) for st in (0, 10)]  # (the reason starts from the style shares)
    down = {"one_shot_em": _table(rows)}
    fail = C.judge(claim, down, reps=200)
    assert fail.verdict == "not reproduced" and "not a matter of which near-tied prompt" in fail.reason


def test_not_below_bc_start_is_judged_on_each_dataset_kind():
    """The 'does not end below its BC start' claims exist for both dataset kinds and read only their own kind's
    datasets: CPL is far below BC on the homogeneous data and level on the heterogeneous."""
    rows = []
    for task in ("button-press", "door-open"):
        for s in range(3):
            for kind, cpl in (("heterogeneous", 0.60 + 0.01 * s), ("homogeneous", 0.20 + 0.01 * s)):
                rows += [("ppl", "bc", "n", f"{task}/{kind}", s, -1, "success", 0.60),
                         ("ppl", "cpl", "n", f"{task}/{kind}", s, -1, "success", cpl)]
    t = {"ppl": _table(rows)}
    by_name = {c.text: c for c in C.CLAIMS}
    het = C.judge(by_name["CPL does not end below its BC start (heterogeneous)"], t)
    hom = C.judge(by_name["CPL does not end below its BC start (homogeneous)"], t)
    assert het.verdict == "reproduced" and hom.verdict == "not reproduced"
    assert "button-press -39" in hom.reason and het.mean == pytest.approx(0.01)


@pytest.mark.parametrize("em,words", [(5.10, "barely moves them"), (4.90, "EM lowers it by 0.200"),
                                      (5.40, "EM raises it by 0.300")])
def test_skew_reason_says_which_way_em_moved_the_skewness(em, words):
    """'barely moves' only for a change below 0.05; otherwise the direction and size (a seed-set-1 run had EM
    lowering it by 0.178, which 'barely' misdescribed)."""
    rows = [("one_shot_em", m, "n", "arith_test", s, -1, "logit_skewness", v)
            for s in range(2) for m, v in (("base", 5.10), ("one_shot_em", em))]
    text = C._skew_reason({"one_shot_em": _table(rows)})
    assert "skewness 5.100 (base)" in text and words in text and "same steps" not in text


def test_skew_reason_reports_the_shift_on_the_base_samples_paired_by_seed():
    """EM lower on its own samples but higher on the base's (the composition effect measured at 9e52ed4): the
    reason gives the paired difference and in how many seeds it is positive."""
    rows = [("one_shot_em", m, "n", "arith_test", s, -1, metric, v)
            for s, (base, em, ref) in enumerate([(5.19, 5.12, 5.20), (5.07, 5.05, 5.08), (5.06, 5.07, 5.05)])
            for m, metric, v in (("base", "logit_skewness", base), ("one_shot_em", "logit_skewness", em),
                                 ("one_shot_em", "logit_skewness_on_reference", ref))]
    text = C._skew_reason({"one_shot_em": _table(rows)})
    assert "EM's logits give 5.110, +0.003 against the base (higher in 2 of 3 seeds)" in text
