"""The compiled generation loop (numba): many samples per call, no Python work per layer or per sample.

`run_block` advances every stream by `n_steps` samples: embedding lookup, 20 gated layers with ring
buffers, the deferred skip product, the output head and Gumbel-max sampling, all in one compiled loop.
Streams are split over threads (numba's prange); each thread runs its own streams through every layer,
so threads never wait on each other inside a step. The small matrix products are written as loops over
the weight rows (a[b, i] * W[i, :] accumulated), which LLVM vectorises and which reuse each weight row
for every stream of the thread.

Compiled on first use and cached on disk by numba (`cache=True`, beside this file), so later processes load
the machine code instead of compiling again. Import this module only where numba is wanted: it needs numba.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange


@njit(fastmath=True, inline="always", cache=True)
def fast_tanh(x):
    # Rational minimax approximation of tanh on [-9, 9] (the coefficients of Eigen's float
    # generic_fast_tanh), |error| ~ 1e-7 for float32 and vectorisable, unlike libm's tanhf.
    x = min(max(x, np.float32(-7.90531110763549805)), np.float32(7.90531110763549805))
    x2 = x * x
    p = np.float32(-2.76076847742355e-16)
    p = p * x2 + np.float32(2.00018790482477e-13)
    p = p * x2 + np.float32(-8.60467152213735e-11)
    p = p * x2 + np.float32(5.12229709037114e-08)
    p = p * x2 + np.float32(1.48572235717979e-05)
    p = p * x2 + np.float32(6.37261928875436e-04)
    p = p * x2 + np.float32(4.89352455891786e-03)
    p = p * x
    q = np.float32(1.19825839466702e-06)
    q = q * x2 + np.float32(1.18534705686654e-04)
    q = q * x2 + np.float32(2.26843463243900e-03)
    q = q * x2 + np.float32(4.89352518554385e-03)
    return p / q

@njit(fastmath=True, inline="always", cache=True)
def accumulate(a, w, c):
    # c[b, :] += sum_i a[b, i] * w[i, :]
    # (no test for a[b, i] == 0: the branch halves the loop's throughput, measured)
    for i in range(a.shape[1]):
        row = w[i]
        for b in range(a.shape[0]):
            value = a[b, i]
            target = c[b]
            for j in range(row.shape[0]):
                target[j] += value * row[j]

@njit(fastmath=True, inline="always", cache=True)
def accumulate_transposed(a, wt, c):
    # c[b, j] += dot(a[b], wt[j]) with wt = w.T: four output columns per pass over a[b], so each
    # weight value is loaded once and the sums stay in registers (2-3x the axpy form for the large
    # skip and output products, measured)
    n_out, n_in = wt.shape
    for j in range(0, n_out - 3, 4):
        r0, r1, r2, r3 = wt[j], wt[j + 1], wt[j + 2], wt[j + 3]
        for b in range(a.shape[0]):
            ab = a[b]
            s0 = np.float32(0.0)
            s1 = np.float32(0.0)
            s2 = np.float32(0.0)
            s3 = np.float32(0.0)
            for i in range(n_in):
                v = ab[i]
                s0 += v * r0[i]
                s1 += v * r1[i]
                s2 += v * r2[i]
                s3 += v * r3[i]
            c[b, j] += s0
            c[b, j + 1] += s1
            c[b, j + 2] += s2
            c[b, j + 3] += s3
    for j in range(n_out - n_out % 4, n_out):
        for b in range(a.shape[0]):
            s0 = np.float32(0.0)
            for i in range(n_in):
                s0 += a[b, i] * wt[j, i]
            c[b, j] += s0

@njit(fastmath=True, cache=True)
def run_block(lo, hi, n_steps, t0, hop, frame0, dilations, offsets, w_taps, w_res, b_res, w_skip_t, b_skip,
              w_hidden_t, b_hidden, w_logits_t, b_logits, embedding, frames, noise, temperature, ring, previous,
              out, logits_out, teacher, input_extra):
    n_layers, residual, gate2x = w_taps.shape
    gate = gate2x // 2
    half = gate // 2
    skip = w_hidden_t.shape[0]
    classes = w_logits_t.shape[0]
    batch = hi - lo
    scale = np.float32(0.7071067811865476)
    x = np.empty((batch, residual), np.float32)
    taps = np.empty((batch, gate2x), np.float32)
    z = np.empty((batch, n_layers * half), np.float32)
    z_layer = np.empty((batch, half), np.float32)
    acc = np.empty((batch, residual), np.float32)
    skips = np.empty((batch, skip), np.float32)
    hidden = np.empty((batch, skip), np.float32)
    logits = np.empty((batch, classes), np.float32)
    # this thread's previous classes, written back at the end: threads writing neighbouring entries of
    # `previous` every step slowed each other 2-3x (measured on the C twin of this loop)
    tokens = previous[lo:hi].copy()
    for step in range(n_steps):
        t = t0 + step
        frame = 0 if frames.shape[0] == 1 else t // hop - frame0
        for b in range(batch):
            token = teacher[lo + b, step] if teacher.shape[0] > 0 else tokens[b]
            x[b, :] = embedding[token]
            if input_extra.shape[0] > 0:  # the pitch-lag input
                x[b, :] += input_extra[step, lo + b]
        for layer in range(n_layers):
            slot = offsets[layer] + t % dilations[layer]
            taps[:, :] = 0.0
            accumulate(x, w_taps[layer], taps)
            for b in range(batch):
                past = ring[slot, lo + b]
                cond = frames[frame, lo + b, layer]
                row = taps[b]
                for j in range(half):
                    a = fast_tanh(row[j] + cond[j] + past[j])
                    g = fast_tanh(row[half + j] + cond[half + j] + past[half + j])
                    z_layer[b, j] = a + a * g
                for j in range(gate):
                    past[j] = row[gate + j]
                z[b, layer * half:(layer + 1) * half] = z_layer[b]
            if layer < n_layers - 1:
                for b in range(batch):
                    acc[b, :] = b_res[layer]
                accumulate(z_layer, w_res[layer], acc)
                for b in range(batch):
                    for j in range(residual):
                        x[b, j] = scale * (x[b, j] + acc[b, j])
        for b in range(batch):
            skips[b, :] = b_skip
        accumulate_transposed(z, w_skip_t, skips)
        for b in range(batch):
            for j in range(skip):
                skips[b, j] = max(skips[b, j], np.float32(0.0))
            hidden[b, :] = b_hidden
        accumulate_transposed(skips, w_hidden_t, hidden)
        for b in range(batch):
            for j in range(skip):
                hidden[b, j] = max(hidden[b, j], np.float32(0.0))
            logits[b, :] = b_logits
        accumulate_transposed(hidden, w_logits_t, logits)
        for b in range(batch):
            if logits_out.shape[0] > 0:
                logits_out[step, lo + b, :] = logits[b]
            best = 0
            best_value = -np.inf
            for j in range(classes):
                value = logits[b, j]
                if temperature > 0.0:
                    value += temperature * noise[step, lo + b, j]
                if value > best_value:
                    best_value = value
                    best = j
            tokens[b] = best
            out[lo + b, step] = best
    previous[lo:hi] = tokens

@njit(parallel=True, cache=True)
def run_parallel(n_threads, n_steps, t0, hop, frame0, dilations, offsets, w_taps, w_res, b_res, w_skip_t, b_skip,
                 w_hidden_t, b_hidden, w_logits_t, b_logits, embedding, frames, noise, temperature, ring, previous,
                 out, logits_out, teacher, input_extra):
    batch = previous.shape[0]
    per = (batch + n_threads - 1) // n_threads
    for k in prange(n_threads):
        lo = k * per
        hi = min(batch, lo + per)
        if lo < hi:
            run_block(lo, hi, n_steps, t0, hop, frame0, dilations, offsets, w_taps, w_res, b_res, w_skip_t,
                      b_skip, w_hidden_t, b_hidden, w_logits_t, b_logits, embedding, frames, noise, temperature,
                      ring, previous, out, logits_out, teacher, input_extra)
