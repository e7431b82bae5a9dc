import torch, json
from speechvq.assets import resolve_model
from speechvq.codec import Codec
from speechvq.audio import load_audio
torch.manual_seed(0)
codec = Codec.from_checkpoint(resolve_model(None), "cpu"); m = codec.model.eval()
ids = [json.loads(l)["id"] for l in open("data/manifests/test.jsonl")][::20]
man = {json.loads(l)["id"]: json.loads(l) for l in open("data/manifests/test.jsonl")}
cb = m.quantizer.lookup(torch.arange(m.quantizer.num_codes if hasattr(m.quantizer,'num_codes') else 512).view(1,-1))[0]  # [D,K]
print("codebook", cb.shape)
with torch.no_grad():
  for fid in ids:
    x = load_audio(man[fid]["path"], 16000)[0]
    for name, w in (("orig", x), ("dec", load_audio(f"/work/diag/screen/full/1/seed0/wav/{fid.replace('/','__')}.wav",16000)[0])):
        z = m.encoder(w.view(1,1,-1))[0]  # [D,F]
        d2 = ((z[:, :, None] - cb[:, None, :]) ** 2).mean(0)  # [F,K]
        if name == "orig":
            codes = d2.argmin(1)
        F = min(d2.shape[0], codes.shape[0])
        dc = d2[torch.arange(F), codes[:F]]; dmin = d2[:F].min(1).values
        srt = d2[:F].sort(1).values
        print(fid, name, "d2(code) %.3f  min %.3f  2nd-1st %.3f  match %.3f" % (dc.mean(), dmin.mean(), (srt[:,1]-srt[:,0]).mean(), (d2[:F].argmin(1)==codes[:F]).float().mean()))
