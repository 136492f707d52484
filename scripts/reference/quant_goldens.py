#!/usr/bin/env python3
"""Golden quantizer outputs from the `gguf` package (an independent oracle for ggml's block formats).

Reads a few tensors of the tiny-a fixture checkpoint (bf16, upcast to float32 exactly) plus hand-made
edge cases, quantizes each with `gguf.quants.quantize` to Q8_0, Q4_0, F16 and BF16, and writes
Tests/Fixtures/quant/quant_goldens.safetensors: for each case `<case>.input` (F32) and
`<case>.<type>` (U8, the exact bytes). The Swift tests require byte-identical output.

Needs only numpy and gguf (`pip install gguf`); no torch.
    python3 scripts/reference/quant_goldens.py
"""

import json
import struct
import sys
from pathlib import Path

import numpy as np
from gguf import GGMLQuantizationType as Q
from gguf import quants

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "Tests/Fixtures/tiny-a/model/model.safetensors"
OUT = ROOT / "Tests/Fixtures/quant/quant_goldens.safetensors"


def read_safetensors(path):
    b = path.read_bytes()
    n = struct.unpack("<Q", b[:8])[0]
    header = json.loads(b[8 : 8 + n])
    base = 8 + n
    out = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        s, e = meta["data_offsets"]
        raw = b[base + s : base + e]
        if meta["dtype"] == "BF16":
            u = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
            arr = u.view(np.float32)
        elif meta["dtype"] == "F32":
            arr = np.frombuffer(raw, dtype="<f4")
        else:
            continue
        out[name] = arr.reshape(meta["shape"]).astype(np.float32)
    return out


def write_safetensors(path, tensors):
    header, blobs, off = {}, [], 0
    for name, arr in tensors.items():
        dt = {np.dtype("float32"): "F32", np.dtype("uint8"): "U8"}[arr.dtype]
        data = np.ascontiguousarray(arr).tobytes()
        header[name] = {"dtype": dt, "shape": list(arr.shape), "data_offsets": [off, off + len(data)]}
        blobs.append(data)
        off += len(data)
    h = json.dumps(header, sort_keys=True).encode()
    h += b" " * ((8 - (8 + len(h)) % 8) % 8)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def edge_cases():
    rng = np.random.default_rng(7)
    c = {}
    c["zeros"] = np.zeros((2, 64), np.float32)
    c["ramp"] = np.linspace(-1, 1, 256, dtype=np.float32).reshape(2, 128)
    # values whose scaled value lands exactly on .5 (rounding ties) and on the Q4 boundaries
    c["ties"] = (np.arange(-64, 64, dtype=np.float32) / 2.0).reshape(4, 32)
    c["neg_max"] = np.concatenate([-np.ones(32, np.float32) * 3, np.ones(32, np.float32) * 2]).reshape(1, 64)
    c["equal_abs"] = np.tile(np.array([1.5, -1.5] * 16, np.float32), (2, 1))
    c["tiny"] = (rng.standard_normal((2, 64)) * 1e-6).astype(np.float32)
    c["subnormal_scale"] = (rng.standard_normal((1, 64)) * 1e-9).astype(np.float32)
    c["large"] = (rng.standard_normal((2, 64)) * 6e4).astype(np.float32)
    c["outlier"] = rng.standard_normal((4, 64)).astype(np.float32)
    c["outlier"][1, 5] = 80.0
    c["normal"] = rng.standard_normal((16, 96)).astype(np.float32)
    return c


def main():
    cases = edge_cases()
    model = read_safetensors(SRC)
    for name in [
        "lfm.embed_tokens.weight",
        "lfm.layers.0.feed_forward.w1.weight",
        "depth_linear.weight",
        "conformer.layers.0.feed_forward1.linear1.weight",
        "audio_adapter.model.3.weight",
    ]:
        cases["fixture." + name] = model[name]
    out = {}
    for name, x in cases.items():
        x = np.ascontiguousarray(x, dtype=np.float32)
        out[name + ".input"] = x
        for qt, tag in [(Q.Q8_0, "q8_0"), (Q.Q4_0, "q4_0"), (Q.F16, "f16"), (Q.BF16, "bf16")]:
            q = quants.quantize(x, qt)
            out[name + "." + tag] = np.ascontiguousarray(q).view(np.uint8).reshape(-1)
    write_safetensors(OUT, out)
    import gguf

    print(
        f"wrote {OUT} ({OUT.stat().st_size} bytes, {len(cases)} cases) with gguf {getattr(gguf, '__version__', '?')}",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
