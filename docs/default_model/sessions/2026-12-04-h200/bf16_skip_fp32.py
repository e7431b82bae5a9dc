"""The systematic-error test (bf16_error_systematic.py) with the skip sum accumulated in float32 (each block's
skip output cast up before the sum); with --head the output head in float32 too."""
import runpy, sys
import torch
from speechvq.models import wavenet

original_split = wavenet.ResidualLayer._residual_and_skip
original_logits = wavenet.WaveNet._logits

def fp32_skip(self, x, z):
    residual, skip = original_split(self, x, z)
    return residual, skip.float()

def fp32_logits(self, skips):
    with torch.autocast(device_type=skips.device.type, enabled=False):
        return original_logits(self, skips.float())

wavenet.ResidualLayer._residual_and_skip = fp32_skip
args = sys.argv[1:]
if "--head" in args:
    args.remove("--head")
    wavenet.WaveNet._logits = fp32_logits
sys.argv = ["x"] + args
runpy.run_path(__file__.replace("bf16_skip_fp32.py", "bf16_error_systematic.py"), run_name="__main__")
