"""bf16 against fp32 gradients of the shipped model (decoder only) on real crops, by batch and crop length: one
batch each, the four worst tensors (inputs: see bf16_error_systematic.py)."""
import copy
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bf16_error_systematic import shipped_decoder_and_corpus  # noqa: E402
from check_fast_path import compare, gradients  # noqa: E402  (tools/, put on the path by the import above)
from speechvq.data.device import DeviceBatches  # noqa: E402

source, corpus = shipped_decoder_and_corpus()
for batch_size, seconds in [(4, 0.256), (4, 0.5), (16, 0.256), (16, 0.5), (32, 0.5)]:
    batch = DeviceBatches(corpus, batch_size, int(seconds * source.config.sample_rate), seed=0).batch(0)
    ref = gradients(copy.deepcopy(source), batch, bf16=False)
    found = compare(ref, gradients(copy.deepcopy(source), batch, bf16=True), worst=4)
    worst = ", ".join(f"{w['tensor']} cos {w['cosine']:.3f} x{w['norm_ratio']:.2f}" for w in found["worst"])
    print(f"batch {batch_size} x {seconds} s: global x{found['global_norm_ratio']:.4f}; worst {worst}", flush=True)
