"""What ships inside the package: the default model, a few seconds of sample speech, and reference voices.

    default.pt        the default model: the paper's structure trained on the offline corpus of 12 speakers
                      (model card in README.md; recipe: recipes/folder/make_default_model.sh)
    sample.flac       3.25 s of Allison Smith (English), the first phrase of the Asterisk prompt
                      en/conf-usermenu-162, an utterance held out of training (test split)
    voices/NAME.flac  one held-out utterance of some of the model's speakers, for speaker-similarity scores

Recordings: Asterisk core sound prompts by Digium/Sangoma (Allison Smith, June Wallack, Carlo), CC-BY-SA-3.0,
converted to 16 kHz mono FLAC (see ATTRIBUTION.txt beside this file).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from ..errors import SpeechVQError

ASSETS = Path(__file__).resolve().parent
SAMPLE_SPEAKER = "allison"  # the voice of sample.flac, one of the default model's speakers
DEMO_VOICES = ("carlo", "june")  # the demo converts the sample into these voices (references in voices/)


def default_model_path() -> Path:
    """The shipped default model's checkpoint (weights only)."""
    return ASSETS / "default.pt"


def resolve_model(path: Optional[str]) -> str:
    """`path` when given, else the shipped default model.

    Raises:
        SpeechVQError: no path given and the default model is missing from this installation.
    """
    if path:
        return path
    default = default_model_path()
    if not default.is_file():
        raise SpeechVQError(f"the default model is missing from this installation ({default}); give --model")
    return str(default)


def sample_speech_path() -> Path:
    """The shipped sample utterance (16 kHz mono FLAC, 3.25 s, speaker SAMPLE_SPEAKER)."""
    return ASSETS / "sample.flac"


def reference_voice_path(speaker: str) -> Optional[Path]:
    """A shipped held-out utterance of `speaker`, or None if none ships."""
    path = ASSETS / "voices" / f"{speaker}.flac"
    return path if path.is_file() else None
