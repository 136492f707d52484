"""Writes a synthetic, speech-like mono WAV (16-bit PCM) of a given length: voiced syllables (a pulse-like harmonic
source through three formant bands), pauses between phrases, light noise. Pure Python (no numpy).

    python3 scripts/bench/make_speech_wav.py OUT.wav --seconds 30 [--rate 16000] [--seed 1]
"""

import argparse
import math
import random
import struct
import wave


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--rate", type=int, default=16000)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    rnd = random.Random(a.seed)
    n = int(a.seconds * a.rate)
    out = bytearray()
    phase = 0.0
    formants = [rnd.uniform(500, 800), rnd.uniform(1200, 1800), rnd.uniform(2400, 3000)]
    for i in range(n):
        t = i / a.rate
        if i % int(0.25 * a.rate) == 0:  # a new syllable every 250 ms
            formants = [rnd.uniform(300, 900), rnd.uniform(900, 2200), rnd.uniform(2200, 3200)]
        f0 = 120 + 30 * math.sin(2 * math.pi * 0.7 * t)
        phase += 2 * math.pi * f0 / a.rate
        src = sum((0.7**k) * math.sin(k * phase) for k in range(1, 12))
        x = sum((0.6**j) * src * math.sin(2 * math.pi * f * t) ** 2 for j, f in enumerate(formants))
        syl = max(0.0, math.sin(math.pi * (t % 0.25) / 0.25)) ** 0.8
        phrase = 0.0 if (t % 3.0) > 2.6 else 1.0  # a 0.4 s pause every 3 s
        v = 0.12 * x * syl * phrase + 0.003 * rnd.gauss(0, 1)
        out += struct.pack("<h", max(-32768, min(32767, int(round(v * 32767)))))
    with wave.open(a.out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(a.rate)
        w.writeframes(bytes(out))


if __name__ == "__main__":
    main()
