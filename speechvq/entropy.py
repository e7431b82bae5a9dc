"""Lossless entropy coding of code sequences: a first-order Markov model and range coding (`constriction`).

Consecutive codes at 250 Hz are strongly dependent (a code often repeats, and some follow others), so a model
of P(code | previous code) measured on training data needs fewer bits than the nominal ceil(log2 K):

    P(c | p) = lambda_p * n(p, c) / n(p) + (1 - lambda_p) * P_uni(c),   lambda_p = n(p) / (n(p) + BACKOFF)
    P_uni(c) = (n(c) + 0.5) / (N + 0.5 K)                              (the first code uses P_uni)

Counts come from `CodeStatistics.from_sequences` over training utterances and travel in the checkpoint. The
coder is constriction's RangeEncoder with its quantised categorical model (`perfect=False`), whose integer
arithmetic gives the same bits on every platform for the same float32 probabilities. A pitch-stream model's
log-F0 + voicing symbols (speechvq/pitch.py) follow one another just as closely (a voiced bin is usually
next to the previous one) and are coded the same way under counts of their own (`CodeStatistics.pitch`).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Iterable, Optional

import numpy as np

BACKOFF = 16.0  # pseudo-count weight of the unigram in each row: rare contexts lean on the unigram


@dataclass(frozen=True)
class CodeStatistics:
    """Unigram and bigram counts of codes.

    Attributes:
        unigram: int64 `[K]`, how often each code occurs.
        bigram: int64 `[K, K]`, bigram[p, c] = how often code c follows code p.
        utterances: number of sequences counted.
        pitch: the same counts of a pitch-stream model's pitch symbols over the same utterances, or None
            (no pitch stream, or statistics measured before pitch streams were coded: its files then carry
            the pitch stream bit-packed).
    """

    unigram: np.ndarray
    bigram: np.ndarray
    utterances: int
    pitch: Optional["CodeStatistics"] = None

    @property
    def codebook_size(self) -> int:
        return int(self.unigram.shape[0])

    @classmethod
    def from_sequences(cls, sequences: Iterable[np.ndarray], codebook_size: int) -> "CodeStatistics":
        """Count codes and code pairs over int `[F]` sequences."""
        unigram = np.zeros(codebook_size, np.int64)
        bigram = np.zeros((codebook_size, codebook_size), np.int64)
        utterances = 0
        for codes in sequences:
            codes = np.asarray(codes, np.int64)
            unigram += np.bincount(codes, minlength=codebook_size)
            np.add.at(bigram, (codes[:-1], codes[1:]), 1)
            utterances += 1
        return cls(unigram, bigram, utterances)

    def to_state(self) -> dict:
        """Arrays and an int, and the pitch counts' state under "pitch" when there are any (the caller stores
        the arrays as tensors in a checkpoint)."""
        state = {"unigram": self.unigram, "bigram": self.bigram, "utterances": self.utterances}
        if self.pitch is not None:
            state["pitch"] = self.pitch.to_state()
        return state

    @classmethod
    def from_state(cls, state: dict) -> "CodeStatistics":
        """Inverse of `to_state`; the arrays may be anything numpy converts (tensors, lists)."""
        pitch = cls.from_state(state["pitch"]) if state.get("pitch") is not None else None
        return cls(np.asarray(state["unigram"], np.int64), np.asarray(state["bigram"], np.int64),
                   int(state["utterances"]), pitch)

    @property
    def fingerprint(self) -> str:
        """Identifies these counts (hex), the pitch counts' included: a file coded with them decodes only with
        the same counts. Counts without pitch keep the fingerprint they had before pitch counts existed."""
        data = self.unigram.astype("<i8").tobytes() + self.bigram.astype("<i8").tobytes()
        if self.pitch is not None:
            data += b"pitch:" + self.pitch.fingerprint.encode()
        return hashlib.sha256(data).hexdigest()[:16]

    def transition_table(self) -> tuple[np.ndarray, np.ndarray]:
        """(first-code probabilities float32 `[K]`, transition probabilities float32 `[K, K]`)."""
        size = self.codebook_size
        unigram = (self.unigram + 0.5) / (self.unigram.sum() + 0.5 * size)
        row_totals = self.bigram.sum(axis=1, keepdims=True).astype(np.float64)
        weight = row_totals / (row_totals + BACKOFF)
        conditional = np.divide(self.bigram, row_totals, out=np.zeros((size, size)), where=row_totals > 0)
        table = weight * conditional + (1.0 - weight) * unigram[None, :]
        return unigram.astype(np.float32), (table / table.sum(axis=1, keepdims=True)).astype(np.float32)

    def transition_bits(self) -> float:
        """Bits per symbol the Markov model needs on the sequences it was counted from, every symbol but each
        sequence's first (an in-sample figure: held-out sequences need a little more); 0 without pairs."""
        transitions = int(self.bigram.sum())
        if transitions == 0:
            return 0.0
        _, table = self.transition_table()
        return -float((self.bigram * np.log2(table.astype(np.float64))).sum()) / transitions

    def model_bits(self, codes: np.ndarray) -> float:
        """Ideal code length of `codes` under this model, in bits (what the range coder approaches)."""
        first, table = self.transition_table()
        codes = np.asarray(codes, np.int64)
        if codes.size == 0:
            return 0.0
        probabilities = np.concatenate([[first[codes[0]]], table[codes[:-1], codes[1:]]])
        return float(-np.log2(probabilities.astype(np.float64)).sum())


def _probabilities(statistics: CodeStatistics, previous: np.ndarray) -> np.ndarray:
    first, table = statistics.transition_table()
    rows = np.empty((previous.shape[0] + 1, statistics.codebook_size), np.float32)
    rows[0] = first
    rows[1:] = table[previous]
    return rows


def encode(codes: np.ndarray, statistics: CodeStatistics) -> bytes:
    """Range-code int `[F]` codes under the Markov model; returns the compressed bytes."""
    import constriction

    codes = np.asarray(codes, np.int32)
    if codes.size == 0:
        return b""
    encoder = constriction.stream.queue.RangeEncoder()
    encoder.encode(codes, constriction.stream.model.Categorical(perfect=False),
                   _probabilities(statistics, codes[:-1].astype(np.int64)))
    return encoder.get_compressed().astype("<u4").tobytes()


def decode(data: bytes, n_codes: int, statistics: CodeStatistics) -> np.ndarray:
    """Inverse of `encode`: int64 `[n_codes]`.

    Raises:
        ValueError: data that does not decode (the caller turns it into a user-facing error).
    """
    import constriction

    if n_codes == 0:
        return np.zeros(0, np.int64)
    if len(data) % 4:
        raise ValueError("range-coded payload is not a whole number of 32-bit words")
    decoder = constriction.stream.queue.RangeDecoder(np.frombuffer(data, dtype="<u4").astype(np.uint32))
    model = constriction.stream.model.Categorical(perfect=False)
    first, table = statistics.transition_table()
    codes = np.empty(n_codes, np.int64)
    # Each code's distribution depends on the one before, so decoding goes code by code.
    codes[0] = decoder.decode(model, first[None, :])[0]
    for index in range(1, n_codes):
        codes[index] = decoder.decode(model, table[codes[index - 1]][None, :])[0]
    return codes


def entropy_bits(codes: np.ndarray, codebook_size: int) -> float:
    """Empirical zeroth-order entropy of a code sequence, bits per code (0 for an empty one)."""
    counts = np.bincount(np.asarray(codes, np.int64), minlength=codebook_size)
    total = counts.sum()
    if total == 0:
        return 0.0
    probabilities = counts[counts > 0] / total
    return max(0.0, float(-(probabilities * np.log2(probabilities)).sum()))


def nominal_bits(codebook_size: int) -> float:
    """log2 K: bits per code of a fixed-length code with no packing waste."""
    return math.log2(codebook_size)
