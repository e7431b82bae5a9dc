"""Fast autoregressive generation: packed weights; on the CPU a C loop (native), a numba loop and a fused
PyTorch fallback; on a GPU a persistent Triton kernel and CUDA graphs; chunk-parallel and many-file batched
decoding. The plain `WaveNet.generate` stays the reference they match."""

from .chunked import DEFAULT_CHOOSE_EVERY_S, Chunk, DecodeOptions, DecodeRequest, Scorer, decode_requests, plan_chunks
from .engine import ENGINES, GenerationEngine, numba_available, resolve_engine

__all__ = ["DEFAULT_CHOOSE_EVERY_S", "Chunk", "DecodeOptions", "DecodeRequest", "ENGINES", "GenerationEngine", "Scorer",
           "decode_requests", "numba_available", "plan_chunks", "resolve_engine"]
