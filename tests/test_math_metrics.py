"""Metrics: pass@k vs brute-force enumeration, avg@k, maj@k clustering, macro average."""

import itertools
import math
import random

import pytest

from benchmarks.math.metrics import (
    avg_at_k,
    cluster_answers,
    maj_at_k,
    macro_average,
    majority_answer,
    pass_at_k,
)


def _pass_at_k_brute(n, c, k):
    """Fraction of all k-subsets of n samples (c correct) that contain a correct one."""
    samples = [True] * c + [False] * (n - c)
    subsets = list(itertools.combinations(range(n), k))
    return sum(any(samples[i] for i in s) for s in subsets) / len(subsets)


@pytest.mark.parametrize("n", range(1, 9))
def test_pass_at_k_equals_enumeration(n):
    for c in range(n + 1):
        for k in range(1, n + 1):
            assert pass_at_k(n, c, k) == pytest.approx(_pass_at_k_brute(n, c, k), abs=1e-12)


def test_pass_at_k_properties_on_large_n():
    rng = random.Random(0)
    for _ in range(200):
        n = rng.randint(1, 256)
        c = rng.randint(0, n)
        k = rng.randint(1, n)
        p = pass_at_k(n, c, k)
        assert 0.0 <= p <= 1.0
        assert pass_at_k(n, c, 1) == pytest.approx(c / n)
        if k < n:
            assert pass_at_k(n, c, k + 1) >= p - 1e-12  # monotone in k
        exact = 1 - math.comb(n - c, k) / math.comb(n, k)
        assert p == pytest.approx(exact, abs=1e-9)


@pytest.mark.parametrize("args", [(0, 0, 1), (4, 5, 1), (4, 2, 0), (4, 2, 5), (4, -1, 1)])
def test_pass_at_k_rejects_bad_arguments(args):
    with pytest.raises(ValueError):
        pass_at_k(*args)


def test_avg_at_k():
    assert avg_at_k([[True], [False], [True], [True]]) == 0.75
    assert avg_at_k([[True, False], [False, False, False, True]]) == pytest.approx((0.5 + 0.25) / 2)
    with pytest.raises(ValueError):
        avg_at_k([])
    with pytest.raises(ValueError, match="problem 1"):
        avg_at_k([[True], []])


def _eq_numeric(a, b):
    try:
        return abs(float(eval(a)) - float(eval(b))) < 1e-9  # noqa: S307 - test-only toy equivalence
    except Exception:
        return False


def test_cluster_answers_with_injected_equivalence():
    ids = cluster_answers(["1/2", "0.5", "3", None, "6/2", "", "2"], _eq_numeric)
    assert ids == [0, 0, 1, -1, 1, -1, 2]


def test_maj_at_k_votes_over_equivalent_forms():
    answers = ["1/2", "3", "0.5", "3", "2/4"]  # {1/2, 0.5, 2/4} = 3 votes beat {3, 3} = 2
    correct = [True, False, True, False, True]
    assert maj_at_k(answers, correct, equivalent=_eq_numeric) == 1.0
    # Exact-match voting would pick "3" (2 votes vs 1 each): a different, wrong majority.
    assert maj_at_k(answers, correct, equivalent=lambda a, b: a == b) == 0.0
    # first k only
    assert maj_at_k(answers, correct, k=2, equivalent=_eq_numeric) == 1.0  # tie -> first cluster
    assert maj_at_k(answers, correct, k=4, equivalent=_eq_numeric) == 1.0  # 2 vs 2 -> first seen
    assert maj_at_k([None, None], [False, False], equivalent=_eq_numeric) == 0.0
    assert maj_at_k([None, "7", None], [False, True, False], equivalent=_eq_numeric) == 1.0


def test_maj_at_k_default_uses_math_verify():
    idx, ids = majority_answer(["\\frac{1}{2}", "0.5", "7"])
    assert idx == 0 and ids == [0, 0, 1]


def test_maj_at_k_matches_brute_force_majority_on_random_votes():
    rng = random.Random(3)
    for _ in range(300):
        k = rng.randint(1, 9)
        answers = [rng.choice(["1", "2", "3", None]) for _ in range(k)]
        correct = [a == "2" for a in answers]
        counts = {a: answers.count(a) for a in answers if a is not None}
        if not counts:
            expected = 0.0
        else:
            top = max(counts.values())
            winner = next(a for a in answers if a is not None and counts[a] == top)
            expected = float(winner == "2")
        assert maj_at_k(answers, correct, equivalent=lambda a, b: a == b) == expected


def test_maj_at_k_rejects_mismatched_lengths():
    with pytest.raises(ValueError):
        maj_at_k(["1"], [True, False])
    with pytest.raises(ValueError):
        maj_at_k(["1"], [True], k=2)


def test_macro_average_is_unweighted():
    assert macro_average({"math500": 0.5, "aime24": 0.1}) == pytest.approx(0.3)
    with pytest.raises(ValueError):
        macro_average({})
    with pytest.raises(ValueError):
        macro_average({"a": float("nan")})
