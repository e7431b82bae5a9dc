"""Screening, not a package feature: the uniform average of several models' weights (stochastic weight averaging
of the ends of cosine cycles, Izmailov et al. 2018), written as a model file that tools/ship_check.py decodes.

    python average.py OUT.pt FIRST.pt SECOND.pt ...

The models must share config, speakers and every tensor's shape (continuations of one model do). Floating-point
tensors that differ between the inputs are averaged; equal ones (here the frozen encoder and codebook, so every
file keeps its codes) and integer buffers are copied from FIRST.pt, as are its config, step and code statistics.
This session averaged 3ff81353 (2026-12-05-cpu-5's end), 8664583f (cpu-6's) and 8fa93834 (cpu-7's): 132 of
154 tensors differed (the decoder side, speaker table and pitch vectors), the average's fingerprint is 74ced4f1.
"""

import sys

import torch

from speechvq.checkpoint import load_checkpoint, weights_fingerprint

out_path, paths = sys.argv[1], sys.argv[2:]
checkpoints = [load_checkpoint(path) for path in paths]
for checkpoint, path in zip(checkpoints, paths):
    print(path, weights_fingerprint(checkpoint.model_state, checkpoint.speakers)[:8], checkpoint.step,
          checkpoint.extra.get("samples_seen"))
payload = torch.load(paths[0], map_location="cpu", weights_only=True)  # FIRST.pt's file, its weights replaced
averaged = []
for key, value in payload["model"].items():
    values = [checkpoint.model_state[key] for checkpoint in checkpoints]
    if all(torch.equal(value, other) for other in values):
        continue
    if not value.is_floating_point():
        sys.exit(f"integer tensor {key} differs between the inputs")
    averaged.append(key)
    payload["model"][key] = torch.stack([other.float() for other in values]).mean(0).to(value.dtype)
print(f"{len(averaged)} of {len(payload['model'])} tensors averaged")
torch.save(payload, out_path)
result = load_checkpoint(out_path)
print("average:", weights_fingerprint(result.model_state, result.speakers)[:8])
