"""Phone purity on synthetic labels, alignment readers, and the speaker probe on separable features."""

from __future__ import annotations

import numpy as np
import pytest

from speechvq.analysis import frame_labels, phone_purity, read_ctm, read_textgrid, speaker_probe
from speechvq.errors import SpeechVQError

TEXTGRID = '''File type = "ooTextFile"
Object class = "TextGrid"

xmin = 0
xmax = 0.1
tiers? <exists>
size = 2
item []:
    item [1]:
        class = "IntervalTier"
        name = "words"
        xmin = 0
        xmax = 0.1
        intervals: size = 1
        intervals [1]:
            xmin = 0
            xmax = 0.1
            text = "hi"
    item [2]:
        class = "IntervalTier"
        name = "phones"
        xmin = 0
        xmax = 0.1
        intervals: size = 3
        intervals [1]:
            xmin = 0
            xmax = 0.02
            text = ""
        intervals [2]:
            xmin = 0.02
            xmax = 0.06
            text = "HH"
        intervals [3]:
            xmin = 0.06
            xmax = 0.1
            text = "AY1"
'''


def test_purity_of_a_known_mapping():
    # codes 0-3 always mean "a", 4-5 "b", 6 "c": purity 1; then 10 frames of code 0 relabelled "b"
    rng = np.random.default_rng(0)
    truth = {0: "a", 1: "a", 2: "a", 3: "a", 4: "b", 5: "b", 6: "c"}
    codes = [rng.integers(0, 7, 200) for _ in range(3)]
    phones = [[truth[int(c)] for c in utterance] for utterance in codes]
    perfect = phone_purity(codes, phones)
    assert perfect.purity == 1.0 and perfect.codes_used == 7 and perfect.phones == 3
    counts = {p: sum(row.count(p) for row in phones) for p in "abc"}
    assert perfect.chance == pytest.approx(max(counts.values()) / 600)
    zeros = [i for i, c in enumerate(codes[0]) if c == 0][:10]
    for i in zeros:
        phones[0][i] = "b"
    assert phone_purity(codes, phones).purity == pytest.approx(590 / 600)
    phones[1][:5] = ["sil"] * 5  # ignored frames leave the count
    assert phone_purity(codes, phones, ignore=("", "sil")).frames == 595


def test_purity_input_errors():
    with pytest.raises(SpeechVQError, match="2 codes but 3"):
        phone_purity([np.array([1, 2])], [["a", "b", "c"]])
    with pytest.raises(SpeechVQError, match="no labelled frame"):
        phone_purity([np.array([1])], [[""]])


def test_alignment_readers_and_frame_labels(tmp_path):
    (tmp_path / "u.TextGrid").write_text(TEXTGRID)
    phones = read_textgrid(tmp_path / "u.TextGrid")
    assert phones == [(0.02, 0.06, "HH"), (0.06, 0.1, "AY1")]
    with pytest.raises(SpeechVQError, match="no interval tier named 'segments'"):
        read_textgrid(tmp_path / "u.TextGrid", "segments")
    (tmp_path / "a.ctm").write_text("u 1 0.02 0.04 HH\nu 1 0.06 0.04 AY1\nv 1 0.0 0.05 S 0.9\n")
    ctm = read_ctm(tmp_path / "a.ctm")
    assert [p for *_, p in ctm["u"]] == ["HH", "AY1"] and len(ctm["v"]) == 1
    assert np.allclose([(a, b) for a, b, _ in ctm["u"]], [(a, b) for a, b, _ in phones], atol=1e-12)
    (tmp_path / "bad.ctm").write_text("u 1 zero 0.04 HH\n")
    with pytest.raises(SpeechVQError, match="bad.ctm:1"):
        read_ctm(tmp_path / "bad.ctm")
    # 4 ms frames: centres 2, 6, 10, ... ms
    assert frame_labels(phones, 26, 0.004) == [""] * 5 + ["HH"] * 10 + ["AY1"] * 10 + [""]


def test_speaker_probe_finds_a_speaker_signal_and_not_a_missing_one():
    rng = np.random.default_rng(0)

    def utterances(separable: bool):
        items = []
        for u in range(12):
            speaker = u % 3
            features = rng.normal(size=(60, 8))
            if separable:
                features[:, speaker] += 3.0
            items.append((features.astype(np.float32), speaker))
        return items[:6], items[6:]

    strong = speaker_probe(*utterances(True), n_speakers=3, steps=200)
    assert strong.frame_accuracy > 0.9 and strong.utterance_accuracy == 1.0
    assert strong.frame_chance == pytest.approx(1 / 3) and strong.test_frames == 360
    weak = speaker_probe(*utterances(False), n_speakers=3, steps=200)
    assert weak.frame_accuracy < 0.5


@pytest.mark.parametrize("lag_taps", [0, 5])
def test_history_costs_real_past_is_the_whole_utterance_and_the_cut_reaches_one_receptive_field(lag_taps):
    import torch
    import torch.nn.functional as F

    from speechvq.analysis import history_context, history_costs
    from speechvq.audio import mu_law_silence
    from speechvq.config import load_config
    from speechvq.models import SpeechVQ

    torch.manual_seed(0)
    model = SpeechVQ(load_config("tiny", ["model.pitch.bits=6", f"model.decoder.pitch_lag_taps={lag_taps}"]).model,
                     speakers=["a", "b"]).eval()
    rf, hop = model.decoder.receptive_field, model.hop_length
    if lag_taps:  # trained taps, and a period everywhere (the noise below has none to track)
        torch.nn.init.normal_(model.decoder.lag_embedding.weight, std=0.5)
    wav = (0.3 * torch.randn(4000)).clamp(-1, 1)
    with torch.no_grad():
        codes = model.quantizer(model.encoder(wav.view(1, 1, -1))).codes
        local = model.local_conditioning(codes, model.encode_pitch(wav.view(1, 1, -1)))
        vector = model.speaker_vectors(torch.tensor([1]))
        targets = model.mu_law_targets(wav.view(1, -1))
        inputs = F.pad(targets[:, :-1], (1, 0), value=mu_law_silence(model.classes))
        period = torch.full((1, local.shape[-1]), 70) if lag_taps else None
        whole = F.cross_entropy(model.decoder(inputs, local=local, speaker=vector, period=period), targets,
                                reduction="none")[0]
    lead, _ = history_context(model.config.decoder, hop, model.lag_reach)
    assert model.lag_reach == (269 if lag_taps else 0)  # 16 kHz / 60 Hz + 2
    starts = [lead, lead + 5 * hop, lead + 30 * hop]
    reach = rf + (70 + 2 if lag_taps else 0)  # the lag taps read up to T + 2 before the receptive field's start
    span = reach + 40
    real, cut = history_costs(model, wav, local[0], vector[0], starts, span=span,
                              period=None if period is None else period[0])
    assert real.shape == cut.shape == (3, span)
    # the crops' margins leave the scored samples as the whole utterance scores them
    torch.testing.assert_close(real, torch.stack([whole[s:s + span] for s in starts]), rtol=0, atol=2e-5)
    # past the receptive field the cut is out of reach; right after it, it costs
    torch.testing.assert_close(cut[:, reach:], real[:, reach:], rtol=0, atol=2e-5)
    assert (cut[:, :4] - real[:, :4]).abs().amax() > 1e-3
    with pytest.raises(ValueError, match="multiple of"):
        history_costs(model, wav, local[0], vector[0], [lead + 1])
    with pytest.raises(ValueError, match="multiple of"):
        history_costs(model, wav, local[0], vector[0], [lead - hop])
