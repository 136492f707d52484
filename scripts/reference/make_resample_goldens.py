#!/usr/bin/env python3
"""Resampling goldens from the reference (torchaudio.functional.resample with its defaults, as
liquid-audio's ChatState.add_audio calls it): Tests/Fixtures/audio/resample.safetensors.

For each source rate in RATES, a deterministic 0.25 s test signal (two tones + a chirp, float32) and its resampling
to 16 kHz. Run with the reference environment: /tmp/refenv/bin/python scripts/reference/make_resample_goldens.py
"""

import hashlib
import json
from pathlib import Path

import numpy as np
import torch
import torchaudio
from safetensors.torch import save_file

RATES = [8000, 22050, 24000, 44100, 48000, 11025]
ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "Tests/Fixtures/audio/resample.safetensors"


def signal(rate: int) -> torch.Tensor:
    t = np.arange(int(rate * 0.25)) / rate
    x = (
        0.4 * np.sin(2 * np.pi * 440 * t)
        + 0.2 * np.sin(2 * np.pi * 3100 * t + 0.3)
        + 0.1 * np.sin(2 * np.pi * (50 + 4000 * t) * t)
    )
    return torch.tensor(x, dtype=torch.float32)[None, :]


def main():
    torch.set_num_threads(1)
    tensors = {}
    for r in RATES:
        x = signal(r)
        y = torchaudio.functional.resample(x, r, 16000)
        tensors[f"in.{r}"] = x.contiguous()
        tensors[f"out.{r}"] = y.contiguous()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(OUT))
    manifest = {
        "generator": "scripts/reference/make_resample_goldens.py",
        "call": (
            "torchaudio.functional.resample(x, rate, 16000) with defaults (sinc_interp_hann, width 6, rolloff 0.99)"
        ),
        "versions": {"torch": torch.__version__, "torchaudio": torchaudio.__version__},
        "rates": RATES,
        "sha256": hashlib.sha256(OUT.read_bytes()).hexdigest(),
    }
    (OUT.parent / "resample.json").write_text(json.dumps(manifest, indent=1) + "\n")
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
