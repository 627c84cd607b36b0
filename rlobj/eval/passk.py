r"""pass@k and maj@k from $n$ samples per problem (pure Python, no torch).

pass@k is estimated without bias from $n \ge k$ samples of which $c$ are correct
(Chen et al., "Evaluating Large Language Models Trained on Code", arXiv 2107.03374, Eq. 1):

$$ \widehat{\text{pass@}k} = 1 - \binom{n-c}{k} \Big/ \binom{n}{k}, $$

computed as the stable product $1 - \prod_{i=n-c+1}^{n} (1 - k/i)$. maj@k (majority voting,
Wang et al., "Self-Consistency", arXiv 2203.11171) is the probability that the most frequent
answer among $k$ samples is correct; from exactly $k$ samples it is the indicator that the
plurality answer (ties broken by first occurrence) is correct.
"""

from collections import Counter
from collections.abc import Hashable, Sequence

__all__ = ["pass_at_k", "pass_at_k_mean", "maj_at_k"]


def _check_counts(n: int, c: int, k: int) -> None:
    for name, value in (("n", n), ("c", c), ("k", k)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"pass_at_k: {name} must be an int, got {type(value).__name__}")
    if n < 1:
        raise ValueError(f"pass_at_k: n (samples) must be >= 1, got {n}")
    if not 0 <= c <= n:
        raise ValueError(f"pass_at_k: c (correct samples) must lie in [0, n={n}], got {c}")
    if not 1 <= k <= n:
        raise ValueError(f"pass_at_k: k must lie in [1, n={n}] (need at least k samples), got {k}")


def pass_at_k(n: int, c: int, k: int) -> float:
    r"""Unbiased pass@k of one problem: $1 - \binom{n-c}{k} / \binom{n}{k}$.

    Args:
        n: samples drawn (>= k).
        c: correct samples among them (0..n).
        k: budget (1..n).

    Example:
        >>> pass_at_k(8, 2, 1), round(pass_at_k(8, 2, 4), 4), pass_at_k(8, 0, 8), pass_at_k(8, 1, 8)
        (0.25, 0.7857, 0.0, 1.0)
    """
    _check_counts(n, c, k)
    if n - c < k:
        return 1.0
    product = 1.0
    for i in range(n - c + 1, n + 1):
        product *= 1.0 - k / i
    return 1.0 - product


def pass_at_k_mean(counts: Sequence[tuple[int, int]], k: int) -> float:
    """Mean unbiased pass@k over problems given as ``(n, c)`` pairs.

    Example:
        >>> pass_at_k_mean([(4, 4), (4, 0)], k=1)
        0.5
    """
    if not counts:
        raise ValueError("pass_at_k_mean: counts must hold at least one (n, c) pair, got none")
    return sum(pass_at_k(n, c, k) for n, c in counts) / len(counts)


def maj_at_k(answers: Sequence[Hashable], correct: Sequence[bool], k: int | None = None) -> float:
    """1.0 when the plurality answer among the first ``k`` samples is correct, else 0.0.

    Args:
        answers: the extracted answer of each sample (``None`` = no answer; never wins a vote
            unless every sample has none).
        correct: whether each sample is correct (same length).
        k: how many samples vote (default all).

    Ties are broken by the answer seen first.

    Example:
        >>> maj_at_k(["3", "4", "3", None], [True, False, True, False])
        1.0
        >>> maj_at_k(["4", "3", "3", "4"], [False, True, True, False])
        0.0
    """
    if len(answers) != len(correct):
        raise ValueError(f"maj_at_k: answers and correct must have the same length, got "
                         f"{len(answers)} and {len(correct)}")
    k = len(answers) if k is None else k
    if not 1 <= k <= len(answers):
        raise ValueError(f"maj_at_k: k must lie in [1, {len(answers)}], got {k}")
    votes = Counter(a for a in answers[:k] if a is not None)
    if not votes:
        return 0.0
    best = max(votes.values())
    winner = next(a for a in answers[:k] if a is not None and votes[a] == best)
    index = list(answers[:k]).index(winner)
    return float(bool(correct[index]))
