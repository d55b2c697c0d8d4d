"""One step's durations over a cohort ordered by key then duration in numpy, for the process findings
(`process_sql.finding_rows`): each key's median and the median of every other key's durations pooled (the
"slower than peers" comparison), exact, from one sort of the step's durations and one of their values.

The engine hands the durations over already encoded as one integer per request, key × span + (duration − lowest)
(`Encoding`), so that one plain sort orders them by key then duration: numpy's vectorised sort of a million int64
takes ~6 ms, where a quantile per key and step in the engine cost ~30 ms of CPU, and masking, gathering and
encoding them in numpy cost as much as the sorts. A request not measured on the step is encoded as `span − 1`, past
every duration: it sorts last in its key's run and above every value, so no mask is needed to leave it out."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# A key's median as (count, twice the median): the sum of the two middle values is an integer, so every key and
# step is screened in integers, and a `Fraction` is built only for the findings shown.
Middle = tuple[int, int | None]

LARGEST_ENCODED = 2**62  # keys × span must stay under it: the engine's BIGINT and numpy's int64 hold it


@dataclass(frozen=True)
class Encoding:
    """How a step's durations are encoded: `lowest` the smallest, `span` one more than the room for the
    durations (highest − lowest + 1), the last value marking a request not measured."""

    lowest: int
    span: int

    @classmethod
    def of(cls, lowest: int, highest: int, keys: int) -> Encoding | None:
        """None when keys × span would overflow (durations over ~10⁸ years apart: never at real scales)."""
        span = highest - lowest + 2
        return cls(lowest, span) if keys * span < LARGEST_ENCODED else None

    def sql(self, code: str, duration: str) -> str:
        """The encoded duration in SQL, from the key's position (`code`) and the duration (NULL: not measured)."""
        # BIGINT throughout: a literal span under 2³¹ is an INTEGER, and so may the key position be
        return f"CAST({code} AS BIGINT) * {self.span} + coalesce(CAST({duration} AS BIGINT) - ({self.lowest}), {self.span - 1})"


@dataclass(frozen=True)
class Runs:
    """The cohort's requests ordered by key: each request's key position, and where each key's run starts."""

    keys: np.ndarray
    starts: np.ndarray

    @classmethod
    def of(cls, totals: list[int]) -> Runs:
        counts = np.array(totals, dtype=np.int64)
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
        return cls(np.repeat(np.arange(len(counts), dtype=np.int64), counts), starts)


@dataclass(frozen=True)
class Ordered:
    """One step's durations over the cohort ordered by key (its position in the sorted keys) then duration."""

    encoded: np.ndarray  # key × span + (duration − lowest), ascending
    values: np.ndarray  # `encoded` less key × span: each key's durations − lowest, then its requests not measured
    counts: np.ndarray  # per key: its durations (requests measured on the step)
    starts: np.ndarray  # per key: where its run begins
    encoding: Encoding

    @classmethod
    def of(cls, encoded: np.ndarray, runs: Runs, counts: np.ndarray, encoding: Encoding) -> Ordered:
        """From the encoded durations of every request of the cohort (in any order), `runs` its requests per key
        and `counts` those measured on the step."""
        encoded.sort()  # in place: the fetched column is ours
        return cls(encoded, encoded - runs.keys * encoding.span, counts, runs.starts, encoding)

    @property
    def measured(self) -> int:
        return int(self.counts.sum())

    def middles(self) -> list[Middle]:
        """Per key position: its count and twice its median (None for no duration)."""
        n, lowest = self.counts, self.encoding.lowest
        low = self.values[self.starts + np.maximum(n - 1, 0) // 2]
        high = self.values[self.starts + n // 2]
        return [
            (count, a + b + 2 * lowest if count else None)
            for count, a, b in zip(n.tolist(), low.tolist(), high.tolist())
        ]

    def peer_middles(self, chosen: list[int]) -> list[int]:
        """Twice the median of everyone else's durations, for each chosen key position (with durations on both
        sides)."""
        everyone = np.sort(self.values)  # the requests not measured last: never among the ranks asked for
        keys = np.array(chosen, dtype=np.int64)
        n = self.measured - self.counts[keys]
        low = self._kth_without(everyone, keys, (n + 1) // 2)
        high = self._kth_without(everyone, keys, n // 2 + 1)
        return [a + b + 2 * self.encoding.lowest for a, b in zip(low.tolist(), high.tolist())]

    def _kth_without(self, everyone: np.ndarray, keys: np.ndarray, ranks: np.ndarray) -> np.ndarray:
        """For each key, the `rank`-th smallest (1-based) value of `everyone` once the key's own are taken out.

        One binary search over `everyone`'s positions for all keys at once: the others at or below a value are
        everyone's (searchsorted on `everyone`) less the key's own (searchsorted on its run of `encoded`)."""
        span, firsts = self.encoding.span, self.starts[keys]
        low, high = np.zeros(len(keys), dtype=np.int64), np.full(len(keys), len(everyone) - 1, dtype=np.int64)
        while (active := low < high).any():
            middle = (low + high) // 2
            value = everyone[middle]
            mine = np.searchsorted(self.encoded, keys * span + value, "right") - firsts
            enough = np.searchsorted(everyone, value, "right") - mine >= ranks
            high = np.where(active & enough, middle, high)
            low = np.where(active & ~enough, middle + 1, low)
        return everyone[low]


def middles_one_by_one(durations: list[list[int]], chosen: list[int]) -> tuple[list[Middle], list[int]]:
    """Each key's count and twice its median, and twice the others' median for the chosen keys, from each key's
    durations in Python integers: for a step whose encoding would overflow (`Encoding.of` is None)."""
    ordered = [sorted(d) for d in durations]
    middles: list[Middle] = [(len(d), d[(len(d) - 1) // 2] + d[len(d) // 2] if d else None) for d in ordered]
    peers = []
    for i in chosen:
        others = sorted(v for j, d in enumerate(ordered) if j != i for v in d)
        peers.append(others[(len(others) - 1) // 2] + others[len(others) // 2])
    return middles, peers
