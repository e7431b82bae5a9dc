"""The same test with the decoder's output head (post_hidden, post_logits) in float32 under autocast."""
import runpy, sys
import torch
from speechvq.models import wavenet

original = wavenet.WaveNet._logits

def fp32_logits(self, skips):
    with torch.autocast(device_type=skips.device.type, enabled=False):
        return original(self, skips.float())

wavenet.WaveNet._logits = fp32_logits
sys.argv = ["x"] + sys.argv[1:]
runpy.run_path(__file__.replace("bf16_head_fp32.py", "bf16_error_systematic.py"), run_name="__main__")
