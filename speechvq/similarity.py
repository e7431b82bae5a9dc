"""Speaker similarity from a pretrained speaker-verification embedding (Resemblyzer's GE2E voice encoder).

Resemblyzer ships its weights, so this works offline. It is an optional dependency (the `eval` extra);
without it, `SpeakerSimilarity()` raises a SpeechVQError that names the extra.

    scorer = SpeakerSimilarity()
    score = scorer.similarity(converted, 16000, target_reference, 16000)   # cosine in [-1, 1]
"""

from __future__ import annotations

import warnings

import numpy as np
from torch import Tensor

from .errors import SpeechVQError

EXTRA_HINT = "pip install 'speechvq[eval]'"


class SpeakerSimilarity:
    """Cosine similarity of utterance embeddings (256-dim, L2-normalised) of a GE2E speaker encoder.

    Raises:
        SpeechVQError: Resemblyzer (or a dependency of it) cannot be imported.
    """

    def __init__(self) -> None:
        try:
            with warnings.catch_warnings():  # webrtcvad's import of the deprecated pkg_resources warns
                warnings.simplefilter("ignore")
                from resemblyzer import VoiceEncoder, preprocess_wav
        except ImportError as err:  # the package, or one of its own imports (webrtcvad needs pkg_resources)
            raise SpeechVQError(f"speaker similarity needs Resemblyzer ({err}); {EXTRA_HINT}") from None
        self._preprocess = preprocess_wav
        self._encoder = VoiceEncoder("cpu", verbose=False)

    def embed(self, wav: Tensor | np.ndarray, sample_rate: int) -> np.ndarray:
        """Utterance embedding of float `[T]` audio at `sample_rate` Hz: float32 `[256]`, unit length.

        Resemblyzer resamples to 16 kHz, normalises the level and trims long silences first.
        """
        samples = wav.detach().cpu().float().numpy() if isinstance(wav, Tensor) else np.asarray(wav, np.float32)
        processed = self._preprocess(samples, source_sr=sample_rate)
        if processed.size == 0:
            raise SpeechVQError("no speech left after silence trimming: cannot embed this audio")
        return self._encoder.embed_utterance(processed)

    def similarity(self, a: Tensor | np.ndarray, rate_a: int, b: Tensor | np.ndarray, rate_b: int) -> float:
        """Cosine similarity of the two utterances' embeddings, in [-1, 1]."""
        return float(np.dot(self.embed(a, rate_a), self.embed(b, rate_b)))
