"""Training: the explicit loop (`loop.py`), run state and RNG (`state.py`), torchrun support, logging."""

from .loop import TrainResult, evaluate, train

__all__ = ["TrainResult", "evaluate", "train"]
