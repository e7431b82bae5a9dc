"""Fast autoregressive generation: packed weights, a compiled loop (numba), a fused PyTorch fallback, CUDA
graphs on a GPU, and chunk-parallel / many-file batched decoding. The plain `WaveNet.generate` stays the
reference they match."""

from .chunked import Chunk, DecodeOptions, DecodeRequest, decode_requests, plan_chunks
from .engine import ENGINES, GenerationEngine, numba_available, resolve_engine

__all__ = ["Chunk", "DecodeOptions", "DecodeRequest", "ENGINES", "GenerationEngine", "decode_requests",
           "numba_available", "plan_chunks", "resolve_engine"]
