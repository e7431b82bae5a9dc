// The page of `speechvq serve`: choose or record speech, send it, follow the job, show what came back.
// Plain JavaScript, no build step and nothing loaded from elsewhere.
"use strict";

const $ = (id) => document.getElementById(id);
let chosen = null; // {sample: true} or {blob, name}
let info = null;

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = !message;
}

function choose(item, label) {
  chosen = item;
  $("chosen").textContent = label;
  showError("");
}

async function loadInfo() {
  const response = await fetch("/api/info");
  info = await response.json();
  const voices = info.voices.length ? `${info.voices.length} voices: ${info.voices.join(", ")}` : "no named voices";
  $("model-info").textContent =
    `Model: ${info.sample_rate} Hz, ${info.frame_rate} codes/s from ${info.codebook_size} entries, ${voices}; ` +
    `${info.engine} decoding engine, sampling temperature ${info.temperature}. ` +
    `Files up to ${info.max_upload_mb} MB and ${info.max_seconds} s.`;
  for (const voice of info.voices) {
    $("voice").add(new Option(voice, voice));
  }
  if (info.reference_voices) {
    $("voice").add(new Option("a second recording (upload below)", "reference"));
  }
}

$("file").addEventListener("change", () => {
  const file = $("file").files[0];
  if (file) choose({ blob: file, name: file.name }, `${file.name} (${(file.size / 1024).toFixed(1)} kB)`);
});

$("use-sample").addEventListener("click", () => {
  $("file").value = "";
  choose({ sample: true }, "the shipped sample (3.25 s, held out of training)");
});

$("voice").addEventListener("change", () => {
  $("reference-row").hidden = $("voice").value !== "reference";
});

// Recording: MediaRecorder gives compressed audio in a browser-chosen container (often WebM, which the
// server does not read), so the page decodes it here and sends 16-bit WAV.
let recorder = null;
if (navigator.mediaDevices && window.MediaRecorder) {
  $("record").hidden = false;
  $("record").addEventListener("click", async () => {
    if (recorder) {
      recorder.stop();
      return;
    }
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    } catch (err) {
      showError(`the microphone is not available: ${err.message}`);
      return;
    }
    const parts = [];
    recorder = new MediaRecorder(stream);
    recorder.ondataavailable = (event) => parts.push(event.data);
    recorder.onstop = async () => {
      stream.getTracks().forEach((track) => track.stop());
      recorder = null;
      $("record").textContent = "Record from the microphone";
      try {
        const wav = await toWav(new Blob(parts));
        choose({ blob: wav, name: "recording.wav" }, `a recording (${(wav.size / 1024).toFixed(1)} kB)`);
      } catch (err) {
        showError(`the recording could not be decoded: ${err.message}`);
      }
    };
    recorder.start();
    $("record").textContent = "Stop recording";
  });
}

async function toWav(blob) {
  const context = new AudioContext();
  const audio = await context.decodeAudioData(await blob.arrayBuffer());
  context.close();
  const samples = audio.getChannelData(0);
  const buffer = new ArrayBuffer(44 + 2 * samples.length);
  const view = new DataView(buffer);
  const text = (offset, s) => [...s].forEach((c, i) => view.setUint8(offset + i, c.charCodeAt(0)));
  text(0, "RIFF"); view.setUint32(4, 36 + 2 * samples.length, true); text(8, "WAVE");
  text(12, "fmt "); view.setUint32(16, 16, true); view.setUint16(20, 1, true); view.setUint16(22, 1, true);
  view.setUint32(24, audio.sampleRate, true); view.setUint32(28, 2 * audio.sampleRate, true);
  view.setUint16(32, 2, true); view.setUint16(34, 16, true);
  text(36, "data"); view.setUint32(40, 2 * samples.length, true);
  samples.forEach((x, i) => view.setInt16(44 + 2 * i, Math.max(-1, Math.min(1, x)) * 32767, true));
  return new Blob([buffer], { type: "audio/wav" });
}

$("job-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  showError("");
  if (!chosen) {
    showError("choose a file, record one, or use the shipped sample first");
    return;
  }
  const form = new FormData();
  if (chosen.sample) form.append("sample", "1");
  else form.append("file", chosen.blob, chosen.name);
  form.append("voice", $("voice").value);
  const reference = $("reference").files[0];
  if ($("voice").value === "reference" && reference) form.append("reference", reference, reference.name);
  $("run").disabled = true;
  try {
    const response = await fetch("/api/jobs", { method: "POST", body: form });
    const job = await response.json();
    if (!response.ok) throw new Error(job.error || `the server answered ${response.status}`);
    $("results").hidden = true;
    await follow(job.id);
  } catch (err) {
    showError(err.message);
  } finally {
    $("run").disabled = false;
    $("progress-box").hidden = true;
  }
});

async function follow(id) {
  $("progress-box").hidden = false;
  for (;;) {
    const response = await fetch(`/api/jobs/${id}`);
    const job = await response.json();
    if (!response.ok) throw new Error(job.error);
    $("progress").value = job.progress;
    $("stage").textContent = `${job.stage}: ${(100 * job.progress).toFixed(0)}%, ${job.elapsed_s.toFixed(1)} s`;
    if (job.state === "error") throw new Error(job.message);
    if (job.state === "done") {
      render(job);
      return;
    }
    await new Promise((resolve) => setTimeout(resolve, 300));
  }
}

function render(job) {
  const r = job.result;
  const url = (name) => `/api/jobs/${job.id}/files/${name}`;
  const kbps = (bps) => `${(bps / 1000).toFixed(2)} kbit/s`;
  const rows = [
    ["input", `${r.name} (${r.kind}), ${r.seconds.toFixed(2)} s`],
    ["code file", `${r.svq_bytes} bytes: ${r.frames} codes, ${r.coding} coding, format version ${r.version}`],
    ["bitrate: nominal", kbps(r.nominal_bps)],
    ["bitrate: code entropy", kbps(r.entropy_bps)],
    ["bitrate: file", `${kbps(r.file_bps)} (${(r.pcm_bps / r.file_bps).toFixed(0)}x smaller than 16-bit PCM)`],
    ["voice it records", r.voice],
  ];
  if (r.encode_rtf !== undefined) {
    const includes = r.encode_includes ? ` (includes ${r.encode_includes})` : "";
    rows.push(["encode real-time factor", r.encode_rtf.toFixed(3) + includes]);
  }
  rows.push(["decode real-time factor", `${r.decode_rtf.toFixed(2)} (${r.engine} engine)`]);
  if (r.target_voice) rows.push(["converted to", `${r.target_voice} (real-time factor ${r.convert_rtf.toFixed(2)})`]);
  const body = $("figures").tBodies[0];
  body.replaceChildren(...rows.map(([key, value]) => {
    const row = body.insertRow();
    row.dataset.key = key;
    row.insertCell().textContent = key;
    row.insertCell().textContent = value;
    return row;
  }));
  $("download-svq").href = url("codes.svq");
  $("notes").replaceChildren(...r.notes.map((note) => Object.assign(document.createElement("li"), { textContent: note })));
  const players = [["original", "original.wav"], ["decoded", "decoded.wav"], ["converted", "converted.wav"]]
    .filter(([, name]) => job.files.includes(name))
    .map(([label, name]) => {
      const box = document.createElement("div");
      const title = document.createElement("strong");
      title.textContent = label === "converted" ? `converted to ${r.target_voice}` : label;
      const audio = document.createElement("audio");
      Object.assign(audio, { controls: true, preload: "auto", src: url(name) });
      audio.dataset.name = name;
      box.append(title, audio);
      return box;
    });
  $("players").replaceChildren(...players);
  $("spectrograms").src = url("spectrograms.png");
  $("results").hidden = false;
}

loadInfo().catch((err) => showError(`cannot reach the server: ${err.message}`));
