"""Screening: give the decoder the samples one transmitted pitch period back (CELP's long-term predictor).

tools/history_use.py found that the shipped decoder predicts each sample from about the last millisecond: a
pitch period back (4-8 ms) is worth 0.002 nats to it. This adds to the decoder's input, at every sample t of a
voiced pitch frame, embeddings of the mu-law classes x[t - T + j] (j = -2..2; T = the period of the frame's
transmitted pitch symbol, rounded to whole samples; the 6-bit symbols are 3% bins, so T is +-1.5 samples off),
each embedding zero at the start, so that the model is the shipped one at step 0. Training only, teacher-forced
(no generation engine knows the input): it asks whether the decoder learns to use the period when given it.

    python pitch_lag.py train OUT_DIR INIT MANIFESTS CACHE [STOP_AT_STEP]   # the run of cpu-3 with the lag input
    python pitch_lag.py score MODEL_OR_RUN VALID_MANIFEST CACHE            # whole-utterance NLL, voiced/unvoiced
"""
import json
import sys

import torch
import torch.nn.functional as F
from torch import nn

import speechvq.train.loop as loop
from speechvq.audio import mu_law_silence
from speechvq.config import load_config
from speechvq.models import SpeechVQ
from speechvq.models.vqvae import VQVAEOutput
from speechvq.pitch import symbol_f0_hz

TAPS = (-2, -1, 0, 1, 2)


class PitchLagSpeechVQ(SpeechVQ):
    """SpeechVQ whose teacher-forced NLL feeds the decoder x[t - T + j] too (see the module docstring)."""

    def __init__(self, config, speakers=None):
        super().__init__(config, speakers=speakers)
        self.lag_embedding = nn.ModuleList(nn.Embedding(self.classes, config.decoder.residual_channels)
                                           for _ in TAPS)
        for embedding in self.lag_embedding:
            nn.init.zeros_(embedding.weight)

    def lagged_inputs(self, inputs, pitch):
        """int64 `[len(TAPS), B, T]`: the class of x[t - T + j] for the input classes `inputs` `[B, T]`
        (inputs[:, t] = x[t - 1]); silence where the frame is unvoiced or the lag reaches before the crop."""
        n = inputs.shape[1]
        f0 = symbol_f0_hz(pitch, self.config.pitch).repeat_interleave(self.pitch_hop, dim=1)[:, :n]
        period = torch.where(f0 > 0, torch.round(self.sample_rate / f0.clamp(min=1.0)), torch.zeros_like(f0)).long()
        t = torch.arange(n, device=inputs.device).view(1, -1)
        silence = mu_law_silence(self.classes)
        lagged = []
        for j in TAPS:
            index = t - period + 1 + j  # inputs[index] = x[t - T + j]
            valid = (period > 0) & (index >= 0) & (index <= t)
            lagged.append(torch.where(valid, inputs.gather(1, index.clamp(min=0, max=n - 1)),
                                      torch.full_like(inputs, silence)))
        return torch.stack(lagged)

    def forward(self, wav, speaker=None):
        """`SpeechVQ.forward` with the lagged classes computed here, outside the compiled loss (YIN's FFTs and
        the gathers stay eager; the compiled function sees fixed-shape tensors only)."""
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.encoder_frozen):
            z_e = self.encoder(wav)
        if self._compiled_nll is not None and self.training:
            self.quantizer.initialize_from(z_e)
        vq = self.quantizer(z_e)
        vector = self.speaker_vectors(speaker)
        pitch = self.encode_pitch(wav)
        if self.training and speaker is not None and self.n_speakers:
            self._update_voice_pitch(speaker, pitch)
        local = self.add_pitch(vq.z_q, pitch, check_range=False)
        targets = self.mu_law_targets(wav[:, 0])
        inputs = F.pad(targets[:, :-1], (1, 0), value=mu_law_silence(self.classes))
        lagged = self.lagged_inputs(inputs, pitch)
        nll_fn = self._compiled_nll if (self._compiled_nll is not None and self.training) else self.lag_nll
        nll = nll_fn(targets, inputs, lagged, local, vector)
        return VQVAEOutput(loss=nll + vq.loss, nll=nll, vq_loss=vq.loss, codebook_loss=vq.codebook_loss,
                           commitment_loss=vq.commitment_loss, perplexity=vq.perplexity,
                           used_codes=vq.used_codes, restarts=vq.restarts, codes=vq.codes)

    def lag_nll(self, targets, inputs, lagged, local, vector, per_sample=False):
        """NLL of `targets` `[B, T]` given `inputs` `[B, T]`, `lagged` `[taps, B, T]` and the conditioning."""
        decoder = self.decoder
        x = decoder.input_embedding(inputs)
        for embedding, classes in zip(self.lag_embedding, lagged):
            x = x + embedding(classes)
        x = x.transpose(1, 2)
        per_layer = decoder.frame_conditioning(local, vector) or [None] * len(decoder.layers)
        skips = 0
        for layer, cond in zip(decoder.layers, per_layer):
            x, skip = layer(x, cond, decoder.hop_length)
            skips = skips + skip
        logits = decoder._logits(skips).float()
        return F.cross_entropy(logits, targets, reduction="none" if per_sample else "mean")

    def compile_training(self, enabled=True):
        self._compiled_nll = torch.compile(self.lag_nll, dynamic=False) if enabled else None


def train(out_dir, init, manifests, cache, stop_at_step):
    """cpu-3's run (config.yaml there: decoder only, 4 x 0.256 s, lr 1e-4, 100 warm-up, cosine fitted to 110
    min, seed 6, the same crops in the same order, compiled) with the lag input; its new embeddings at 10 x lr."""
    cfg = load_config("recipes/folder/conf/default.yaml", [
        f"data.train_manifest={manifests}/train.jsonl", f"data.valid_manifest={manifests}/valid.jsonl",
        f"data.speakers={manifests}/speakers.json", f"data.cache_dir={cache}", "train.max_steps=100000",
        "train.seed=6", "data.segment_s=0.256", "data.batch_size=4", "data.num_workers=0",
        "data.valid_max_utterances=20", "data.loader=device", "train.precision=fp32", "train.compile=true",
        "train.freeze_encoder=true", "train.new_weights_lr_scale=10", "train.lr=1e-4", "train.warmup_steps=100",
        "train.log_every=50", "train.valid_every=250", "train.checkpoint_every=250", "train.valid_audio_s=0"])
    loop.SpeechVQ = PitchLagSpeechVQ
    loop.train(cfg, out_dir, device="cpu", init=init, max_minutes=110, stop_at_step=stop_at_step)


@torch.no_grad()
def score(source, manifest, cache_dir):
    """Teacher-forced NLL of the whole validation utterances (each from its own start), voiced and unvoiced
    samples apart (the pitch stream's voicing), for a model with or without the lag input."""
    from speechvq.checkpoint import load_checkpoint
    from speechvq.data.dataset import AudioCache, to_float
    from speechvq.data.manifest import read_manifest
    from speechvq.pitch import voiced_f0

    checkpoint = load_checkpoint(source)
    lag = any(k.startswith("lag_embedding.") for k in checkpoint.model_state)
    model = (PitchLagSpeechVQ if lag else SpeechVQ)(checkpoint.config.model, speakers=checkpoint.speakers)
    model.load_state_dict(checkpoint.model_state, strict=False)
    model.eval()
    cache = AudioCache(cache_dir, model.sample_rate, model.config.level_dbfs)
    sums = {"voiced": [0.0, 0], "unvoiced": [0.0, 0]}
    for entry in read_manifest(manifest):
        wav = torch.from_numpy(to_float(cache.load(entry.path))).view(1, 1, -1)
        z_q = model.quantizer(model.encoder(wav)).z_q
        local = model.add_pitch(z_q, model.encode_pitch(wav), check_range=False)
        vector = model.speaker_vectors(torch.tensor([model.speakers.index(entry.speaker)]))
        targets = model.mu_law_targets(wav[:, 0])
        inputs = F.pad(targets[:, :-1], (1, 0), value=mu_law_silence(model.classes))
        if lag:
            lagged = model.lagged_inputs(inputs, model.encode_pitch(wav))
            nll = model.lag_nll(targets, inputs, lagged, local, vector, per_sample=True)[0]
        else:
            nll = F.cross_entropy(model.decoder(inputs, local=local, speaker=vector), targets, reduction="none")[0]
        voiced = voiced_f0(wav[0, 0], model.sample_rate, model.pitch_hop, model.config.pitch)[1]
        voiced = voiced.repeat_interleave(model.pitch_hop)[:nll.numel()]
        for name, mask in (("voiced", voiced), ("unvoiced", ~voiced)):
            sums[name][0] += float(nll[mask].sum())
            sums[name][1] += int(mask.sum())
    print(json.dumps({"model": str(source), "lag_input": lag,
                      **{name: {"nll": s / max(n, 1), "samples": n} for name, (s, n) in sums.items()}}))


if __name__ == "__main__":
    if sys.argv[1] == "train":
        train(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], int(sys.argv[6]) if len(sys.argv) > 6 else None)
    else:
        score(sys.argv[2], sys.argv[3], sys.argv[4])
