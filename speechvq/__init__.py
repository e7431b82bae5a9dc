"""speechvq: a VQ-VAE speech codec and voice-conversion system (van den Oord et al. 2017).

Public API:
    SpeechVQ       the model (encoder, vector quantizer, speaker table, WaveNet decoder)
    load_model     a model for inference from a checkpoint file
    load_config    a validated Config from a preset or YAML file plus dotted overrides
    Codec          waveform <-> .svq bytes with a checkpoint (Codec.from_checkpoint, compress, decompress)
"""

from .checkpoint import load_model
from .codec import Codec
from .config import Config, load_config
from .errors import SpeechVQError
from .models import SpeechVQ
from .version import __version__

__all__ = ["__version__", "Codec", "Config", "SpeechVQ", "SpeechVQError", "load_config", "load_model"]
