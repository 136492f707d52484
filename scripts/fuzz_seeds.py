"""Seed inputs for scripts/fuzz.sh (small valid files of every format, written without dependencies)."""

import json
import struct
import sys
from pathlib import Path

out = Path(sys.argv[1])
root = Path(__file__).resolve().parents[1]
for t in ("safetensors", "gguf", "wav", "tokenizer", "config", "codes"):
    (out / t).mkdir(parents=True, exist_ok=True)


def safetensors(tensors):
    header, data, off = {}, b"", 0
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + len(raw)]}
        data += raw
        off += len(raw)
    h = json.dumps(header).encode()
    return struct.pack("<Q", len(h)) + h + data


(out / "safetensors/a").write_bytes(safetensors({"w": ("F32", [2, 2], struct.pack("<4f", 1, 2, 3, 4))}))
(out / "safetensors/b").write_bytes(
    safetensors({"x": ("BF16", [3], b"\x80\x3f" * 3), "y": ("I64", [], struct.pack("<q", 7))})
)


def gguf():
    def s(x):
        b = x.encode()
        return struct.pack("<Q", len(b)) + b

    kv = s("general.architecture") + struct.pack("<I", 8) + s("lfm2-audio")
    kv += s("general.alignment") + struct.pack("<I", 4) + struct.pack("<I", 32)
    ti = s("t") + struct.pack("<I", 2) + struct.pack("<QQ", 4, 2) + struct.pack("<I", 0) + struct.pack("<Q", 0)
    head = b"GGUF" + struct.pack("<I", 3) + struct.pack("<QQ", 1, 2) + kv + ti
    head += b"\0" * (-len(head) % 32)
    return head + struct.pack("<8f", *range(8))


(out / "gguf/a").write_bytes(gguf())


def wav(fmt, bits, ch, rate, frames):
    data = bytes((i * 37) % 256 for i in range(frames * ch * bits // 8))
    fmtc = struct.pack("<HHIIHH", fmt, ch, rate, rate * ch * bits // 8, ch * bits // 8, bits)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmtc)) + fmtc + b"LIST" + struct.pack("<I", 3) + b"abc\0"
    body += b"data" + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


for i, (f, b, c) in enumerate([(1, 16, 1), (1, 8, 2), (1, 24, 1), (3, 32, 2), (1, 32, 1), (3, 64, 1)]):
    (out / f"wav/{i}").write_bytes(wav(f, b, c, 16000 + 1000 * i, 40))
for i, s in enumerate(
    [
        "Hello, world!",
        "naïve café 😊 <|im_start|>user\n",
        "   \t\n  ",
        "日本語のテキスト",
        "<|im_end|><|audio_start|>x",
    ]
):
    (out / f"tokenizer/{i}").write_bytes(s.encode())
(out / "config/a").write_bytes((root / "Tests/Fixtures/tiny-a/model/config.json").read_bytes())
(out / "config/b").write_bytes((root / "Tests/Fixtures/tiny-b/model/config.json").read_bytes())
(out / "config/m").write_bytes((root / "Tests/Fixtures/tiny-a/model/mimi_config.json").read_bytes())
(out / "codes/a").write_bytes(b"[[1,2,3,4,5,6,7,8],[2048,2048,2048,2048,2048,2048,2048,2048]]")
(out / "codes/b").write_bytes(b"[]")
