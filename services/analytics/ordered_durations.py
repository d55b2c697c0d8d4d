"""One step's durations over a cohort ordered by key then duration in numpy, for the process findings
(`process_sql.finding_rows`): each key's median and the median of every other key's durations pooled (the
"slower than peers" comparison), exact, from one sort of the step's encoded durations.

The engine hands the durations over already encoded as one integer per request, key × span + (duration − lowest)
(`Encoding`), so that one plain sort orders them by key then duration: numpy's vectorised sort of a million int64
takes ~6 ms, where a quantile per key and step in the engine cost ~30 ms of CPU, and masking, gathering and
encoding them in numpy cost as much as the sorts. A request not measured on the step is encoded as `span − 1`, past
every duration: it sorts last in its key's run and above every value, so no mask is needed to leave it out.

Only the encoded array is kept (8 bytes a request and step): the durations less their key's offset are derived
where they are needed — at each key's two middle positions, and for the peers' medians one array of them, built
and sorted only for a step with keys to compare and dropped when they are found.

A step whose durations lie too far apart for key × span to fit (`Encoding.of` is None: an event `time` far out of
range) is encoded in numpy by each duration's rank among the step's distinct durations instead (`DenseRanks`): the
order statistics of the ranks are the ranks of the order statistics, so the same machinery reads them exactly."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# A key's median as (count, twice the median): the sum of the two middle values is an integer, so every key and
# step is screened in integers, and a `Fraction` is built only for the findings shown.
Middle = tuple[int, int | None]

LARGEST_ENCODED = 2**62  # keys × span must stay under it: the engine's BIGINT and numpy's int64 hold it


@dataclass(frozen=True)
class Encoding:
    """How a step's durations are encoded by the engine: `lowest` the smallest, `span` one more than the room for
    the durations (highest − lowest + 1), the last value marking a request not measured."""

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

    def durations(self, values: np.ndarray) -> list[int]:
        """The durations that encoded values (less their key's offset) stand for, as Python integers."""
        return [self.lowest + value for value in values.tolist()]


@dataclass(frozen=True, eq=False)
class DenseRanks:
    """A step encoded by each duration's rank among its distinct durations (`distinct`, ascending): key × span +
    rank, span one more than the number of distinct durations, the last value marking a request not measured."""

    distinct: np.ndarray

    @property
    def span(self) -> int:
        return len(self.distinct) + 1

    @classmethod
    def encode(cls, codes: np.ndarray, durations: np.ndarray, measured: np.ndarray) -> tuple[DenseRanks, np.ndarray]:
        """The encoding and every request's encoded duration, from each request's key position (`codes`), its raw
        duration and whether it is `measured` on the step (elsewhere the duration is ignored)."""
        distinct, ranks = np.unique(durations[measured], return_inverse=True)
        ranked = cls(distinct)
        if (int(codes.max(initial=0)) + 1) * ranked.span > np.iinfo(np.int64).max:
            raise ValueError("too many keys and distinct durations to rank them in 64 bits")
        encoded = np.full(len(codes), ranked.span - 1, dtype=np.int64)
        encoded[measured] = ranks.reshape(-1)  # numpy 2.x shapes return_inverse like its input
        encoded += codes * ranked.span
        return ranked, encoded

    def durations(self, values: np.ndarray) -> list[int]:
        return self.distinct[values].tolist()


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

    encoded: np.ndarray  # key × span + value, ascending: each key's values, then its requests not measured
    counts: np.ndarray  # per key: its durations (requests measured on the step)
    runs: Runs
    encoding: Encoding | DenseRanks

    @classmethod
    def of(cls, encoded: np.ndarray, runs: Runs, counts: np.ndarray, encoding: Encoding | DenseRanks) -> Ordered:
        """From the encoded durations of every request of the cohort (in any order), `runs` its requests per key
        and `counts` those measured on the step."""
        encoded.sort()  # in place: the fetched column is ours
        return cls(encoded, counts, runs, encoding)

    @property
    def measured(self) -> int:
        return int(self.counts.sum())

    def middles(self) -> list[Middle]:
        """Per key position: its count and twice its median (None for no duration)."""
        n = self.counts
        keys = np.flatnonzero(n)  # a key with no duration has no middle values (nor, ranked, durations for them)
        firsts, offsets = self.runs.starts[keys], keys * self.encoding.span
        low = self.encoding.durations(self.encoded[firsts + (n[keys] - 1) // 2] - offsets)
        high = self.encoding.durations(self.encoded[firsts + n[keys] // 2] - offsets)
        middles: list[Middle] = [(count, None) for count in n.tolist()]
        for key, count, a, b in zip(keys.tolist(), n[keys].tolist(), low, high):
            middles[key] = (count, a + b)
        return middles

    def peer_middles(self, chosen: list[int]) -> list[int]:
        """Twice the median of everyone else's durations, for each chosen key position (with durations on both
        sides)."""
        if not chosen:
            return []
        # every request's value, sorted: the requests not measured last, never among the ranks asked for
        everyone = np.multiply(self.runs.keys, -self.encoding.span)
        everyone += self.encoded
        everyone.sort()
        keys = np.array(chosen, dtype=np.int64)
        n = self.measured - self.counts[keys]
        low = self.encoding.durations(self._kth_without(everyone, keys, (n + 1) // 2))
        high = self.encoding.durations(self._kth_without(everyone, keys, n // 2 + 1))
        return [a + b for a, b in zip(low, high)]

    def _kth_without(self, everyone: np.ndarray, keys: np.ndarray, ranks: np.ndarray) -> np.ndarray:
        """For each key, the `rank`-th smallest (1-based) value of `everyone` once the key's own are taken out.

        One binary search over `everyone`'s positions for all keys at once: the others at or below a value are
        everyone's (searchsorted on `everyone`) less the key's own (searchsorted on its run of `encoded`)."""
        span, firsts = self.encoding.span, self.runs.starts[keys]
        low, high = np.zeros(len(keys), dtype=np.int64), np.full(len(keys), len(everyone) - 1, dtype=np.int64)
        while (active := low < high).any():
            middle = (low + high) // 2
            value = everyone[middle]
            mine = np.searchsorted(self.encoded, keys * span + value, "right") - firsts
            enough = np.searchsorted(everyone, value, "right") - mine >= ranks
            high = np.where(active & enough, middle, high)
            low = np.where(active & ~enough, middle + 1, low)
        return everyone[low]
