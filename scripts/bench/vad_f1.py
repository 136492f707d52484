#!/usr/bin/env python3
"""Frame precision / recall / F1 of the server's voice activity detector (Sources/LFMServer/VAD.swift, through the
hidden `lfm-run vad`) beside `webrtcvad` (PyPI), on espeak-ng speech with silence and noise gaps at known positions.

Each condition is one 16 kHz recording: espeak-ng sentences separated by gaps of seeded random length; the ground
truth is each sentence's span (first to last non-silent sample of espeak-ng's output; the short pauses between its
words count as speech), labelled on 20 ms frames (a frame is speech when half of it is). Conditions: silent gaps;
gaps with noise bursts (white and low-passed, 12 dB under the speech); steady white noise under everything at 20 dB
and 10 dB SNR; steady low-passed ("rumble") noise at 10 dB. webrtcvad runs on the same 20 ms frames, each of its
modes 0-3, raw (no hangover). Ours runs as the server runs it (threshold 0.5) with its silence hangover at the
server's default 500 ms and at 200 ms.

usage: scripts/bench/vad_f1.py [--lfm-run .build/debug/lfm-run] [--seed 1] [--keep DIR]
needs: espeak-ng (Debian), webrtcvad or webrtcvad-wheels (PyPI), numpy
"""

import argparse, json, os, subprocess, sys, tempfile, wave

import numpy as np

RATE = 16000
FRAME = RATE // 50  # 20 ms
SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "Please call me back when you get this message.",
    "It is going to rain later this afternoon.",
    "Turn left at the second traffic light.",
    "How many people are coming to dinner tonight?",
    "The meeting has been moved to Thursday morning.",
    "I would like a cup of tea with milk.",
    "Remember to lock the door before you leave.",
    "Seven hundred and twenty three.",
    "Can you hear me now?",
    "The train to the airport leaves every ten minutes.",
    "She sells sea shells by the sea shore.",
]


def espeak(text, voice, speed):
    r = subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "--stdout", text], capture_output=True)
    if r.returncode != 0:
        raise SystemExit(f"espeak-ng failed: {r.stderr.decode()[-500:]}")
    import io

    w = wave.open(io.BytesIO(r.stdout))
    x = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float64) / 32768
    src = w.getframerate()
    t = np.arange(int(len(x) * RATE / src)) * src / RATE
    y = np.interp(t, np.arange(len(x)), x)
    nz = np.nonzero(np.abs(y) > 1e-3)[0]
    return y[nz[0] : nz[-1] + 1]


def lowpassed(n, rng):
    """Noise with most of its energy under ~300 Hz (a one-pole low-pass of white noise), unit RMS."""
    w = rng.standard_normal(n)
    y = np.empty(n)
    acc = 0.0
    a = 0.9
    for i in range(n):
        acc = a * acc + (1 - a) * w[i]
        y[i] = acc
    return y / (np.sqrt(np.mean(y * y)) + 1e-12)


def build(condition, seed):
    """(samples, ground-truth frame labels) of one condition."""
    rng = np.random.default_rng(seed)
    voices = ["en-us", "en", "en-us+f3", "en+m3"]
    parts, spans = [], []
    pos = 0

    def add(x, speech=False):
        nonlocal pos
        if speech:
            spans.append((pos, pos + len(x)))
        parts.append(x)
        pos += len(x)

    add(np.zeros(int(0.8 * RATE)))
    speech_rms = []
    for i, s in enumerate(SENTENCES):
        x = espeak(s, voices[i % len(voices)], int(rng.integers(140, 190)))
        x = x * (10 ** (rng.uniform(-6, 0) / 20)) * 0.5 / (np.max(np.abs(x)) + 1e-12)
        speech_rms.append(np.sqrt(np.mean(x * x)))
        add(x, speech=True)
        gap = int(rng.uniform(0.4, 1.6) * RATE)
        g = np.zeros(gap)
        if condition == "noise-gaps" and i % 2 == 0:
            # a burst in the middle of the gap, 12 dB under the speech
            n = gap // 2
            level = np.mean(speech_rms) * 10 ** (-12 / 20)
            burst = rng.standard_normal(n) if i % 4 == 0 else lowpassed(n, rng)
            g[gap // 4 : gap // 4 + n] = level * burst
        add(g)
    x = np.concatenate(parts)
    level = np.mean(speech_rms)
    if condition.startswith("white-"):
        snr = float(condition.split("-")[1].rstrip("db"))
        x = x + level * 10 ** (-snr / 20) * rng.standard_normal(len(x))
    elif condition.startswith("rumble-"):
        snr = float(condition.split("-")[1].rstrip("db"))
        x = x + level * 10 ** (-snr / 20) * lowpassed(len(x), rng)
    x = x + 1e-5 * rng.standard_normal(len(x))  # a dither: no frame is digital zero
    frames = len(x) // FRAME
    truth = np.zeros(frames, dtype=bool)
    for a, b in spans:
        for f in range(a // FRAME, min(b // FRAME + 1, frames)):
            lo, hi = f * FRAME, (f + 1) * FRAME
            truth[f] = truth[f] or (min(hi, b) - max(lo, a)) * 2 >= FRAME
    return np.clip(x, -1, 1), truth


def write_wav(path, x):
    w = wave.open(path, "wb")
    w.setnchannels(1)
    w.setsampwidth(2)
    w.setframerate(RATE)
    w.writeframes((x * 32767).round().astype("<i2").tobytes())
    w.close()


def ours(lfm_run, path, frames, silence_ms):
    r = subprocess.run(
        [lfm_run, "vad", "--audio", path, "--silence-ms", str(silence_ms)], capture_output=True, text=True
    )
    if r.returncode != 0:
        raise SystemExit(f"lfm-run vad failed: {r.stderr[-500:]}")
    lab = np.zeros(frames, dtype=bool)
    for line in r.stdout.splitlines():
        o = json.loads(line)
        if "start_ms" in o:
            lab[o["start_ms"] // 20 : min(o["end_ms"] // 20, frames)] = True
    return lab


def webrtc(x, mode):
    import webrtcvad

    v = webrtcvad.Vad(mode)
    pcm = (x * 32767).round().astype("<i2").tobytes()
    n = len(x) // FRAME
    return np.array([v.is_speech(pcm[i * FRAME * 2 : (i + 1) * FRAME * 2], RATE) for i in range(n)])


def prf(pred, truth):
    tp = int(np.sum(pred & truth))
    fp = int(np.sum(pred & ~truth))
    fn = int(np.sum(~pred & truth))
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lfm-run", default=".build/debug/lfm-run")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--keep", help="keep the recordings in this folder")
    a = ap.parse_args()
    try:
        import webrtcvad  # noqa: F401
    except ImportError:
        raise SystemExit("webrtcvad is missing: pip install webrtcvad (or webrtcvad-wheels)")
    work = a.keep or tempfile.mkdtemp(prefix="lfm-vad.")
    os.makedirs(work, exist_ok=True)
    conditions = ["silent-gaps", "noise-gaps", "white-20db", "white-10db", "rumble-10db"]
    detectors = ["ours (500 ms)", "ours (200 ms)"] + [f"webrtcvad {m}" for m in range(4)]
    table = {d: [] for d in detectors}
    print(f"frame precision / recall / F1 (20 ms frames, 16 kHz; recordings in {work})")
    print(f"{'condition':<13}{'speech':>8} " + "".join(f"{d:>22}" for d in detectors))
    for ci, c in enumerate(conditions):
        x, truth = build(c, a.seed * 100 + ci)
        path = os.path.join(work, c + ".wav")
        write_wav(path, x)
        preds = [ours(a.lfm_run, path, len(truth), 500), ours(a.lfm_run, path, len(truth), 200)]
        preds += [webrtc(x, m) for m in range(4)]
        row = f"{c:<13}{truth.mean():>7.0%} "
        for d, p in zip(detectors, preds):
            s = prf(p[: len(truth)], truth)
            table[d].append(s)
            row += f"{s[0]:>8.2f}{s[1]:>6.2f}{s[2]:>6.2f}  "
        print(row)
    row = f"{'mean F1':<13}{'':>8} "
    for d in detectors:
        row += f"{np.mean([s[2] for s in table[d]]):>20.3f}  "
    print(row)


if __name__ == "__main__":
    main()
