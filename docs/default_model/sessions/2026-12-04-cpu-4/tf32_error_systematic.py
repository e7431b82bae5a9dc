"""Is TF32's gradient error systematic, as bf16's is? The same measurement as the H200 session's
bf16_error_systematic.py, with CUDA's TF32 emulated on this CPU.

On CUDA `speechvq train` let cuDNN and cuBLAS use TF32 (10-bit mantissa inputs, float32 accumulation) for whatever
runs in float32, so the lease's "float32" main run would not have been IEEE float32. Here every convolution and
linear layer rounds its operands to TF32 (round to nearest on the 13 dropped mantissa bits) in the forward pass and
in both backward products (input and weight gradients), accumulating in float32 as tensor cores do. For two
independent batches (BATCH x SECONDS, real crops, shipped model, decoder only): cosine between the two batches'
float32 gradients (sampling noise), between their TF32 errors (TF32 - float32) and between their bf16 errors,
and each error's size relative to the float32 gradient.

    python tf32_error_systematic.py 32 0.5
    python tf32_error_systematic.py --check     # the emulation without rounding equals float32; TF32 rounds

Reads the shipped model, the prepared audio cache and the shipped split's training manifest (see the H200
session's script for where they were).
"""
import contextlib
import copy
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "2026-12-04-h200"))
from bf16_error_systematic import ROOT, cos, flat, shipped_decoder_and_corpus  # noqa: E402

sys.path.insert(0, str(ROOT / "tools"))
from check_fast_path import gradients  # noqa: E402
from speechvq.data.device import DeviceBatches  # noqa: E402

DROPPED_BITS = 23 - 10  # float32 keeps 23 mantissa bits, TF32 10


def to_tf32(x: torch.Tensor, enabled: bool = True) -> torch.Tensor:
    """float32 `x` rounded to TF32's 10-bit mantissa (nearest, ties away from zero), still stored as float32."""
    if not enabled:
        return x
    bits = x.contiguous().view(torch.int32)
    rounded = (bits + (1 << (DROPPED_BITS - 1))) & ~((1 << DROPPED_BITS) - 1)
    return rounded.view(torch.float32)


class TF32Conv1d(torch.autograd.Function):
    """conv1d whose three products (output, input gradient, weight gradient) read TF32-rounded operands."""

    @staticmethod
    def forward(ctx, x, weight, bias, stride, padding, dilation, groups, rounding):
        ctx.save_for_backward(x, weight)
        ctx.args = (stride, padding, dilation, groups, rounding, bias is not None)
        return ORIGINAL_CONV1D(to_tf32(x, rounding), to_tf32(weight, rounding), bias, stride, padding, dilation,
                               groups)

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        stride, padding, dilation, groups, rounding, has_bias = ctx.args
        g = to_tf32(grad, rounding)
        grad_x = torch.nn.grad.conv1d_input(x.shape, to_tf32(weight, rounding), g, stride, padding, dilation, groups)
        grad_w = torch.nn.grad.conv1d_weight(to_tf32(x, rounding), weight.shape, g, stride, padding, dilation, groups)
        grad_b = grad.sum(dim=(0, 2)) if has_bias else None
        return grad_x, grad_w, grad_b, None, None, None, None, None


class TF32Linear(torch.autograd.Function):
    """linear whose three products read TF32-rounded operands."""

    @staticmethod
    def forward(ctx, x, weight, bias, rounding):
        ctx.save_for_backward(x, weight)
        ctx.args = (rounding, bias is not None)
        return ORIGINAL_LINEAR(to_tf32(x, rounding), to_tf32(weight, rounding), bias)

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        rounding, has_bias = ctx.args
        g = to_tf32(grad, rounding)
        grad_x = g @ to_tf32(weight, rounding)
        grad_w = g.reshape(-1, g.shape[-1]).T @ to_tf32(x, rounding).reshape(-1, x.shape[-1])
        grad_b = grad.reshape(-1, grad.shape[-1]).sum(0) if has_bias else None
        return grad_x, grad_w, grad_b, None


ORIGINAL_CONV1D, ORIGINAL_LINEAR = F.conv1d, F.linear


@contextlib.contextmanager
def emulated_tf32(rounding: bool = True):
    """Within: every F.conv1d / F.linear (nn.Conv1d and nn.Linear call them) goes through the TF32 emulation."""
    def conv1d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
        if isinstance(padding, str):
            raise NotImplementedError("string padding is not emulated")
        return TF32Conv1d.apply(x, weight, bias, _one(stride), _one(padding), _one(dilation), groups, rounding)

    def linear(x, weight, bias=None):
        return TF32Linear.apply(x, weight, bias, rounding)

    F.conv1d, F.linear = conv1d, linear
    try:
        yield
    finally:
        F.conv1d, F.linear = ORIGINAL_CONV1D, ORIGINAL_LINEAR


def _one(value):
    return value[0] if isinstance(value, (tuple, list)) else value


def emulated_gradients(model, batch, rounding: bool = True) -> dict[str, torch.Tensor]:
    with emulated_tf32(rounding):
        return gradients(model, batch, bf16=False)


def check() -> None:
    """The emulation's plumbing: without rounding it reproduces float32's gradients; with it, it moves them."""
    source, corpus = shipped_decoder_and_corpus()
    batch = DeviceBatches(corpus, 2, 2048, seed=0).batch(0)
    ref = gradients(copy.deepcopy(source), batch, bf16=False)
    plain = emulated_gradients(copy.deepcopy(source), batch, rounding=False)
    tf32 = emulated_gradients(copy.deepcopy(source), batch, rounding=True)
    same = max(((plain[n] - ref[n]).norm() / ref[n].norm().clamp_min(1e-30)).item() for n in ref)
    moved = ((flat(tf32) - flat(ref)).norm() / flat(ref).norm()).item()
    x = torch.tensor([1.0 + 2.0 ** -11, 1.0 + 2.0 ** -10 + 2.0 ** -12, -3.0])
    print(f"unrounded emulation vs float32: worst tensor relative difference {same:.2e} (float rounding expected)")
    print(f"TF32 emulation vs float32: whole gradient relative difference {moved:.2e}")
    print(f"to_tf32({x.tolist()}) = {to_tf32(x).tolist()}")


def main() -> None:
    if sys.argv[1:] == ["--check"]:
        check()
        return
    batch_size, seconds = int(sys.argv[1]), float(sys.argv[2])
    source, corpus = shipped_decoder_and_corpus()
    batches = DeviceBatches(corpus, batch_size, int(seconds * source.config.sample_rate), seed=0)
    fp32, tf32_error, bf16_error = [], [], []
    for k in (0, 1):
        batch = batches.batch(k)
        ref = gradients(copy.deepcopy(source), batch, bf16=False)
        tf32 = emulated_gradients(copy.deepcopy(source), batch)
        bf16 = gradients(copy.deepcopy(source), batch, bf16=True)
        fp32.append(ref)
        tf32_error.append({name: tf32[name] - ref[name] for name in ref})
        bf16_error.append({name: bf16[name] - ref[name] for name in ref})
    print(f"batch {batch_size} x {seconds} s")
    print("tensor | cos(fp32 grad 0, 1) | TF32: cos(error 0, 1) | |error| / |grad| | bf16: cos(error 0, 1) | "
          "|error| / |grad|")
    names = ["decoder.layers.0.out.bias", "decoder.layers.1.out.bias", "decoder.layers.2.out.bias",
             "decoder.layers.3.out.bias", "decoder.layers.1.out.weight", "decoder.layers.10.out.bias",
             "decoder.post_logits.bias"]
    rows = [(name, fp32[0][name], fp32[1][name], tf32_error[0][name], tf32_error[1][name], bf16_error[0][name],
             bf16_error[1][name]) for name in names if name in fp32[0]]
    rows.append(("all", flat(fp32[0]), flat(fp32[1]), flat(tf32_error[0]), flat(tf32_error[1]),
                 flat(bf16_error[0]), flat(bf16_error[1])))
    for name, g0, g1, t0, t1, b0, b1 in rows:
        print(f"{name} | {cos(g0, g1):.3f} | {cos(t0, t1):.3f} | {(t0.norm() / g0.norm()).item():.4f} | "
              f"{cos(b0, b1):.3f} | {(b0.norm() / g0.norm()).item():.3f}")


if __name__ == "__main__":
    main()
