"""Two plate texts lined up character by character (Levenshtein alignment).

Why one module: the view check (which characters a view contradicts) and the plate eval (which
characters were misread as which, and how many edits a read is off) must line texts up the
same way.
"""

from __future__ import annotations

Pair = tuple[int | None, int | None]  # (index in a, index in b); None: nothing on that side


def align(a: str, b: str) -> list[Pair]:
    """The pairs of a cheapest edit script from ``a`` to ``b``, in order: matches and
    substitutions pair two indices, a deletion is (i, None), an insertion (None, j)."""
    n, m = len(a), len(b)
    cost = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(n + 1):
        cost[i][0] = i
    for j in range(m + 1):
        cost[0][j] = j
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            cost[i][j] = min(cost[i - 1][j] + 1, cost[i][j - 1] + 1,
                             cost[i - 1][j - 1] + (a[i - 1] != b[j - 1]))
    pairs: list[Pair] = []
    i, j = n, m
    while i > 0 or j > 0:
        if i > 0 and j > 0 and cost[i][j] == cost[i - 1][j - 1] + (a[i - 1] != b[j - 1]):
            pairs.append((i - 1, j - 1))
            i, j = i - 1, j - 1
        elif i > 0 and cost[i][j] == cost[i - 1][j] + 1:
            pairs.append((i - 1, None))
            i -= 1
        else:
            pairs.append((None, j - 1))
            j -= 1
    pairs.reverse()
    return pairs


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance: the pairs of ``align`` that are not matches."""
    return sum(1 for i, j in align(a, b) if i is None or j is None or a[i] != b[j])
