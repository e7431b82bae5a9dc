"""Screen: best of N every S seconds scored by the code distance times (1 + LAMBDA x pitch disagreement): the share of
judged frames whose YIN voicing or F0 (20%) disagrees with the transmitted pitch symbol, over the frames whose YIN
window lies inside the scored waveform (the chooser's margin raised to 6 frames for that; the distance term is
unchanged by a wider margin). usage: pitchscore.py N EVERY LAMBDA SEEDS OUT"""
import json, math, sys
from pathlib import Path
import torch
import speechvq.inference as inference
import speechvq.generation.chunked as chunked
from speechvq.assets import resolve_model
from speechvq.codec import Codec
from speechvq.data.manifest import read_manifest, select_files
from speechvq.evaluation import average_over_seeds, evaluate_seeds, files_without_speech, paired_difference, pinned_decoding
from speechvq.pitch import lag_range, pitch_symbols, track_pitch

n, every, lam = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
seeds, out = [int(s) for s in sys.argv[4].split(",")], Path(sys.argv[5])
MARGIN = 6
original_init = chunked._Chooser.__init__
def init(self, *a, **k):
    original_init(self, *a, **k)
    self.margin = max(self.margin, MARGIN)
chunked._Chooser.__init__ = init

captured = []
original_voice_pitch = inference.voice_pitch
def voice_pitch(model, encoded, voice):
    p = original_voice_pitch(model, encoded, voice)
    captured.append(p)
    return p
inference.voice_pitch = voice_pitch
original_distance = inference.code_distance
stats = {"frames": 0, "errors": 0}

def distance(model, codes):
    mse = original_distance(model, codes)
    pitches = [p.view(-1).cpu() for p in captured[-len(codes):]]
    captured.clear()
    cfg, hop = model.config.pitch, model.decoder.hop_length
    _, tau_max = lag_range(model.sample_rate, cfg.fmin_hz, cfg.fmax_hz)
    half = (2 * tau_max + 1) // 2 + hop  # samples a frame's YIN window reaches from its centre (with slack)
    last_bin = cfg.symbols - 2
    tolerance = math.log(1.2) / math.log(cfg.fmax_hz / cfg.fmin_hz) * last_bin  # 20% in bins

    def score(chunk, first, wavs, lo, hi):
        base = mse(chunk, first, wavs, lo, hi)
        sent = pitches[chunk.request]
        level = model.waveform_from_classes(wavs)
        track = track_pitch(level, model.sample_rate, hop, cfg.fmin_hz, cfg.fmax_hz)
        got = pitch_symbols(track, cfg)  # [N, frames] per code frame of the waveform
        frames = [f for f in range(lo, hi) if (f - first) * hop + hop // 2 - half >= 0
                  and (f - first) * hop + hop // 2 + half <= wavs.shape[1] and f // cfg.frame_codes < sent.numel()]
        if not frames:
            return base
        idx = torch.tensor([f - first for f in frames])
        want = sent[torch.tensor([f // cfg.frame_codes for f in frames])]
        have = got[:, idx]
        voicing = (have > 0) != (want > 0)
        pitch = (have > 0) & (want > 0) & ((have - want).abs() > tolerance)
        rate = (voicing | pitch).double().mean(1)
        stats["frames"] += len(frames); stats["errors"] += float(rate.min()) * len(frames)
        return base * (1 + lam * rate)
    return score
inference.code_distance = distance

torch.set_num_threads(2)
codec = Codec.from_checkpoint(resolve_model(None), "cpu")
entries = select_files(read_manifest("data/manifests/test.jsonl"), None, True)
entries = entries[:int(sys.argv[6])] if len(sys.argv) > 6 else entries
excluded = set(files_without_speech(entries))
keys = ["stoi", "pesq_wb", "mcd_db", "ffe", "si_sdr_db", "dnsmos_ovrl"]
decoding = pinned_decoding(codec.model.decoder, "auto", "full", best_of=n, choose_every_s=every)
label = f"{n}e{every:g}p{lam:g}"
reports = evaluate_seeds(codec, entries, out / label, decoding, seeds, None, label=label)
mine = average_over_seeds([{"files": [f for f in r["files"] if f["id"] not in excluded]} for r in reports], keys)
print(label, {k: round(v, 4) if v is not None else None for k, v in mine["mean"].items()}, flush=True)
print(label, "pitch-judged frames", stats["frames"], "lowest candidate disagreement", round(stats["errors"] / max(1, stats["frames"]), 4))
for ref in (f"{n}e{every:g}", "1"):
    rr = [json.load(open(f"/work/diag/screen/full/{ref}/seed{s}/report.json")) for s in seeds]
    base = average_over_seeds([{"files": [f for f in r["files"] if f["id"] not in excluded]} for r in rr], keys)
    print(f"{label} - {ref}:", {k: (round(d["mean"], 4), round(d["ci95"], 4)) for k in keys
                               if (d := paired_difference(base["files"], mine["files"], k))}, flush=True)
