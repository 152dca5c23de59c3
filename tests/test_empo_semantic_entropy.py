"""EMPO semantic-entropy reward: clustering, entropy, rewards, thresholds, no-label guarantee."""
import math
import random

import pytest

from methods.empo.semantic_entropy import (
    SemanticEntropyReward,
    answers_equivalent,
    batch_semantic_entropy_rewards,
    cluster_answers,
    group_rewards,
    semantic_entropy,
    semantic_entropy_rewards,
)


def boxed(a):
    return f"Some reasoning ... so the answer is \\boxed{{{a}}}"


# ---------------------------------------------------------------- clustering
def test_equivalent_forms_cluster_together():
    ids = cluster_answers(["\\frac12", "0.5", "1/2", "\\frac{1}{2}", "\\dfrac{1}{2}"])
    assert ids == [0, 0, 0, 0, 0]


def test_different_values_stay_apart():
    ids = cluster_answers(["\\frac12", "2", "0.5", "-2", "1/3", "2.0"])
    assert ids == [0, 1, 0, 2, 3, 1]


def test_equivalence_is_symmetric_on_examples():
    pairs = [("\\frac12", "0.5"), ("12.8", "64/5"), ("3", "4"), ("x=2", "2")]
    for a, b in pairs:
        assert answers_equivalent(a, b) == answers_equivalent(b, a)
    assert answers_equivalent("12.8", "\\frac{64}{5}")
    assert not answers_equivalent("3", "4")


def test_empty_and_missing_answers_are_singletons():
    ids = cluster_answers([None, "", "  ", "3", None, "3"])
    # every missing answer opens its own cluster; the two 3s share one
    assert ids == [0, 1, 2, 3, 4, 3]


def test_equivalence_cache_within_group():
    calls = []

    def eq(a, b):
        calls.append((a, b))
        return a == b

    cluster_answers(["1", "2", "1", "2", "1", "2", "3", "3"], equivalent=eq)
    # distinct non-identical pairs ever compared: (1,2), (1,3), (2,3) -> each at most once
    keys = {tuple(sorted(c)) for c in calls}
    assert len(calls) == len(keys) <= 3


def test_cluster_ids_property_random_groups():
    rng = random.Random(0)
    for _ in range(50):
        g = rng.randint(1, 12)
        answers = [rng.choice(["1", "2", "3", None, "4"]) for _ in range(g)]
        ids = cluster_answers(answers, equivalent=lambda a, b: a == b)
        # first-appearance numbering, same string <-> same id, missing -> unique id
        seen = []
        for i in ids:
            if i not in seen:
                assert i == len(seen)
                seen.append(i)
        for i in range(g):
            for j in range(g):
                if answers[i] is None or answers[j] is None:
                    assert (ids[i] == ids[j]) == (i == j)
                else:
                    assert (ids[i] == ids[j]) == (answers[i] == answers[j])


# ---------------------------------------------------------------- entropy and rewards
def test_entropy_hand_computed():
    assert semantic_entropy([0, 0, 0, 0]) == 0.0
    assert semantic_entropy([0, 1, 2, 3]) == pytest.approx(math.log(4))
    # p = (1/2, 1/4, 1/4): H = 1/2 log 2 + 2 * 1/4 log 4 = 1.5 log 2
    assert semantic_entropy([0, 0, 1, 2]) == pytest.approx(1.5 * math.log(2))


def test_rewards_hand_computed():
    comps = [boxed("\\frac12"), boxed("0.5"), boxed("3"), "no answer at all"]
    rewards, h = semantic_entropy_rewards(comps)
    # clusters {0,1} (p=1/2), {2} (1/4), {3 missing} (1/4)
    assert rewards == pytest.approx([0.5, 0.5, 0.25, 0.25])
    assert h == pytest.approx(1.5 * math.log(2))
    rewards0, _ = semantic_entropy_rewards(comps, empty_reward_zero=True)
    assert rewards0 == pytest.approx([0.5, 0.5, 0.25, 0.0])


def test_default_thresholds_filter_both_extremes():
    same = [boxed("7")] * 4
    r, h = semantic_entropy_rewards(same)
    assert h == 0.0 and r == [0.0] * 4
    diff = [boxed(str(i)) for i in range(4)]
    r, h = semantic_entropy_rewards(diff)
    assert h == pytest.approx(math.log(4)) and r == [0.0] * 4
    # all missing: G singletons -> H = log G -> filtered
    r, h = semantic_entropy_rewards(["x", "y", "z"])
    assert h == pytest.approx(math.log(3)) and r == [0.0] * 3


def test_thresholds_are_exclusive():
    ids = [0, 0, 1, 1]  # H = log 2
    h = math.log(2)
    assert group_rewards(ids, delta_low=h, delta_high=None)[2] is False  # H == delta_low -> out
    assert group_rewards(ids, delta_low=0.0, delta_high=h)[2] is False  # H == delta_high -> out
    r, hh, kept = group_rewards(ids, delta_low=h - 0.01, delta_high=h + 0.01)
    assert kept and r == [0.5] * 4 and hh == pytest.approx(h)
    # None means log G exactly: a group with H just below log G is kept
    r, _, kept = group_rewards([0, 1, 2, 2], delta_high=None)
    assert kept and r == [0.25, 0.25, 0.5, 0.5]


def test_reward_property_random():
    rng = random.Random(1)
    for _ in range(100):
        g = rng.randint(2, 16)
        ids_raw = [rng.randint(0, 4) for _ in range(g)]
        ids = cluster_answers([str(i) for i in ids_raw], equivalent=lambda a, b: a == b)
        r, h, kept = group_rewards(ids, 0.0, 10.0)  # wide window: filter only H == 0
        assert 0.0 <= h <= math.log(g) + 1e-12
        if kept:
            # rewards are cluster frequencies: sum_i r_i = sum_j |c_j|^2 / G
            sizes = [ids.count(c) for c in set(ids)]
            assert sum(r) == pytest.approx(sum(s * s for s in sizes) / g)
            # same-cluster members share a reward; a bigger cluster never gets less
            for i in range(g):
                for j in range(g):
                    if ids.count(ids[i]) >= ids.count(ids[j]):
                        assert r[i] >= r[j]
        else:
            assert h == 0.0 and r == [0.0] * g


# ---------------------------------------------------------------- batches / adapter
def test_batch_matches_per_group_and_pool():
    groups = [
        [boxed("1"), boxed("1"), boxed("2"), boxed("0.5")],
        [boxed("\\frac12"), boxed("1/2"), boxed("0.5"), boxed("3")],
        [boxed("4")] * 4,
    ]
    flat = [c for g in groups for c in g]
    expected = []
    for g in groups:
        expected += semantic_entropy_rewards(g)[0]
    serial, ents, kept = batch_semantic_entropy_rewards(flat, 4)
    assert serial == pytest.approx(expected)
    assert kept == [True, True, False]
    pooled, ents2, _ = batch_semantic_entropy_rewards(flat, 4, workers=2)
    assert pooled == pytest.approx(serial) and ents2 == pytest.approx(ents)
    with pytest.raises(ValueError, match="num_generations"):
        batch_semantic_entropy_rewards(flat[:-1], 4)


def test_adapter_never_sees_labels():
    """The no-label guarantee: gold answers passed by TRL (dataset columns) cannot change rewards."""
    comps = [boxed("1"), boxed("1"), boxed("2"), boxed("0.5"), boxed("3"), boxed("3"), boxed("3"), None]
    comps = [c if c else "nothing" for c in comps]
    prompts = ["p0"] * 4 + ["p1"] * 4
    reward = SemanticEntropyReward(num_generations=4)
    r_gold = reward(prompts=prompts, completions=comps, answer=["1"] * 4 + ["3"] * 4)
    r_scrambled = reward(prompts=prompts, completions=comps, answer=["99"] * 4 + ["-7"] * 4)
    r_none = reward(prompts=prompts, completions=comps)
    assert r_gold == r_scrambled == r_none
    assert r_gold == pytest.approx([0.5, 0.5, 0.25, 0.25, 0.75, 0.75, 0.75, 0.25])
    assert reward.__name__ == "semantic_entropy"
    assert reward.history[-1]["frac_filtered"] == 0.0


def test_adapter_logs_metrics_and_handles_conversational():
    logged = {}
    comps = [[{"role": "assistant", "content": boxed(a)}] for a in ["5", "5", "5", "5"]]
    reward = SemanticEntropyReward(num_generations=4)
    out = reward(prompts=["p"] * 4, completions=comps, log_metric=lambda k, v: logged.__setitem__(k, v))
    assert out == [0.0] * 4
    assert logged == {"empo/semantic_entropy": 0.0, "empo/frac_filtered": 1.0}


def test_group_equivalence_agrees_with_harness_pairwise():
    from methods.empo.semantic_entropy import GroupEquivalence

    answers = ["\\frac12", "0.5", "1/2", "2", "-2", "\\sqrt{2}", "2^{1/2}", "(1,3]", "(1, 3]", "x^2+2x+1",
               "(x+1)^2", "12.8", "64/5", "", "abc"]
    geq = GroupEquivalence()
    for i, a in enumerate(answers):
        for b in answers[i + 1:]:
            if a.strip() and b.strip():
                assert geq(a, b) == answers_equivalent(a, b), (a, b)
    assert geq("\\sqrt{2}", "2^{1/2}") and geq("x^2+2x+1", "(x+1)^2") and not geq("2", "-2")


def test_group_equivalence_integer_fast_path_matches_math_verify():
    """Integer answers take the numeric fast path; the clusters equal math-verify's on the same answers."""
    from math_verify import parse, verify

    from methods.empo.semantic_entropy import GroupEquivalence, cluster_answers

    answers = ["12", "012", "+12", "-3", "-03", "7", "12", "0", "-0", "5"]
    eq = GroupEquivalence()

    def slow(a, b):
        pa, pb = parse("\\boxed{" + a + "}"), parse("\\boxed{" + b + "}")
        return a.strip() == b.strip() or (bool(verify(pa, pb)) and bool(verify(pb, pa)))

    assert cluster_answers(answers, eq) == cluster_answers(answers, slow)
    assert not eq.parsed  # nothing was parsed: every pair took the fast path
