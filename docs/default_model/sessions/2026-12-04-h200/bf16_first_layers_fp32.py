"""The systematic-error test (bf16_error_systematic.py) with the first N residual blocks (default 4) in float32
under autocast: their inputs are the mu-law input's embedding rows, 256 values that bf16 rounds the same way at
every occurrence."""
import runpy, sys
import torch
from speechvq.models import wavenet

first = int(sys.argv[3]) if len(sys.argv) > 3 else 4
original_forward = wavenet.ResidualLayer.forward

def forward(self, x, cond, hop_length):
    if getattr(self, "_fp32_block", False):
        with torch.autocast(device_type=x.device.type, enabled=False):
            return original_forward(self, x.float(), None if cond is None else cond.float(), hop_length)
    return original_forward(self, x, cond, hop_length)

wavenet.ResidualLayer.forward = forward
original_init = wavenet.WaveNet.__init__

def init(self, *args, **kwargs):
    original_init(self, *args, **kwargs)
    for layer in list(self.layers)[:first]:
        layer._fp32_block = True

wavenet.WaveNet.__init__ = init
sys.argv = ["x"] + sys.argv[1:3]
runpy.run_path(__file__.replace("bf16_first_layers_fp32.py", "bf16_error_systematic.py"), run_name="__main__")
