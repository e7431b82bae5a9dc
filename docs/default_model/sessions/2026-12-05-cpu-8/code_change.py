"""Screening: the share of code frames two models give the same files (here 3ff81353 against this session's
whole-model continuation), and the codes each uses. python code_change.py A.pt B.pt test.jsonl"""

import sys

import torch

from speechvq.codec import Codec
from speechvq.audio import load_audio
from speechvq.data.manifest import read_manifest

torch.set_num_threads(1)
a, b = Codec.from_checkpoint(sys.argv[1]), Codec.from_checkpoint(sys.argv[2])
entries = read_manifest(sys.argv[3])
same = total = 0
used_a, used_b = set(), set()
for e in entries:
    wav = load_audio(e.path, a.model.sample_rate)[0]
    with torch.no_grad():
        ca = a.encode(wav, e.speaker).codes
        cb = b.encode(wav, e.speaker).codes
    same += int((ca == cb).sum())
    total += ca.numel()
    used_a |= set(ca.tolist())
    used_b |= set(cb.tolist())
print(f"{len(entries)} files, {total} frames: {same/total:.3f} of the codes unchanged; codes used {len(used_a)} -> {len(used_b)}")
