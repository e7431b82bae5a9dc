"""The neural parts: encoder, vector quantizer, WaveNet decoder, and the assembled SpeechVQ model."""

from .encoder import Encoder
from .quantizer import VectorQuantizer, VQOutput
from .vqvae import SpeechVQ, VQVAEOutput
from .wavenet import WaveNet, WaveNetState

__all__ = ["Encoder", "VectorQuantizer", "VQOutput", "SpeechVQ", "VQVAEOutput", "WaveNet", "WaveNetState"]
