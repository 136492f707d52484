#!/usr/bin/env python3
"""Byte parity of the unweighted K-quant quantizers and mixes with llama.cpp (docs/format.md §6.1).

    python3 scripts/bench/kquant_parity.py --checkpoint /tmp/fullsize --workdir /tmp/kqp \\
        --llama-bin /tmp/llamacpp/build/bin [--cases q3_k_m,q3_k,q4_k_m,...] [--goldens q3_k]

Exports the checkpoint's backbone as F32 (`lfm-convert export-llama --quant f32`), runs llama.cpp's `llama-quantize`
on it for each case, runs our `export-llama` for the matching preset, and compares the two files tensor by tensor
(imatrix_parity.py's comparison: tensors of the same type block by block, the rest reported). A case named after a
preset (q3_k_m, q4_k_m, q5_k_m, q6_k) compares the whole mix; a case named after a type (q3_k, q4_k, q5_k, q6_k)
compares `llama-quantize --pure TYPE` against the tensors of that type in our preset of the same bits.

--goldens TYPE,... rebuilds those types' entries of Tests/Fixtures/quant/kquant_goldens.safetensors (the others are
kept): two rows of one tensor that llama-quantize wrote in that type (bytes from its file, inputs from the F32
export), and the edge cases that the file already holds for Q4_K (same inputs) through ggml's quantize_row_*_ref
(libggml-base of the same build, through ctypes); each with `gguf.quants.dequantize` of the bytes. Needs a release
build of lfm-convert and the `gguf` Python package. llama.cpp is built outside the repository and never committed.
"""

import argparse
import ctypes
import json
import os
import struct
import sys
from pathlib import Path

import numpy as np
from gguf import GGMLQuantizationType as Q
from gguf import GGUFReader, quants

sys.path.insert(0, str(Path(__file__).resolve().parent))
from imatrix_parity import compare, sh  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
CONV = ROOT / ".build/release/lfm-convert"
GOLDENS = ROOT / "Tests/Fixtures/quant/kquant_goldens.safetensors"
# case -> (llama-quantize type, --pure, our preset)
CASES = {
    "q3_k_m": ("Q3_K_M", False, "q3_k_m"),
    "q4_k_m": ("Q4_K_M", False, "q4_k_m"),
    "q5_k_m": ("Q5_K_M", False, "q5_k_m"),
    "q6_k": ("Q6_K", False, "q6_k"),
    "q3_k": ("Q3_K", True, "q3_k_m"),
    "q4_k": ("Q4_K", True, "q4_k_m"),
    "q5_k": ("Q5_K", True, "q5_k_m"),
}
# golden type -> (gguf type, bytes per super-block, a tensor llama-quantize's mix stores in it, its rows)
GOLDEN_TYPES = {"q3_k": (Q.Q3_K, 110, "q3_k_m", "blk.4.ffn_gate.weight")}


def read_safetensors(path):
    b = path.read_bytes()
    n = struct.unpack("<Q", b[:8])[0]
    header = json.loads(b[8 : 8 + n])
    out = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        s, e = meta["data_offsets"]
        dt = {"F32": np.float32, "U8": np.uint8}[meta["dtype"]]
        out[name] = np.frombuffer(b[8 + n + s : 8 + n + e], dtype=dt).copy()
    return out


def write_safetensors(path, tensors):
    header, blobs, off = {}, [], 0
    for name in sorted(tensors):
        a = tensors[name]
        raw = a.tobytes()
        header[name] = {"dtype": "F32" if a.dtype == np.float32 else "U8", "shape": [a.size],
                        "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(struct.pack("<Q", len(h)) + h + b"".join(blobs))
    tmp.replace(path)


def goldens(types, work, lb, f32):
    lib = ctypes.CDLL(str(lb / "libggml-base.so"))
    g = read_safetensors(GOLDENS)
    edges = sorted(k[10:-6] for k in g if k.startswith("q4_k.edge.") and k.endswith(".input"))  # q4_k.edge.NAME.input
    f32_tensors = {t.name: t for t in GGUFReader(f32).tensors}
    for ty in types:
        qtype, bpb, preset, tensor = GOLDEN_TYPES[ty]
        for k in [k for k in g if k.startswith(ty + ".")]:
            del g[k]
        ref = getattr(lib, f"quantize_row_{ty[:-1]}{ty[-1].upper()}_ref")
        ref.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
        theirs = {t.name: t for t in GGUFReader(work / f"llama-{preset}.gguf").tensors}[tensor]
        if theirs.tensor_type != qtype:
            sys.exit(f"{tensor} is {theirs.tensor_type.name} in llama-quantize's {preset}, not {qtype.name}")
        frows = np.asarray(f32_tensors[tensor].data, dtype=np.float32)
        frows = frows.reshape(-1, frows.shape[-1])
        qrows = np.asarray(theirs.data).view(np.uint8).reshape(frows.shape[0], -1)
        for r in [0, qrows.shape[0] - 1]:
            x, qb = frows[r, :512].copy(), qrows[r, : 2 * bpb].copy()
            base = f"{ty}.{tensor}.row{r}"
            g[base + ".input"], g[base + ".bytes"] = x, qb
            g[base + ".gguf_dequant"] = quants.dequantize(qb, qtype).astype(np.float32).reshape(-1)
        for e in edges:
            x = g[f"q4_k.edge.{e}.input"].copy()
            out = np.zeros(bpb * (x.size // 256), dtype=np.uint8)
            ref(x.ctypes.data, out.ctypes.data, x.size)
            base = f"{ty}.edge.{e}"
            g[base + ".input"], g[base + ".bytes"] = x, out
            g[base + ".gguf_dequant"] = quants.dequantize(out, qtype).astype(np.float32).reshape(-1)
        print(f"goldens {ty}: 2 rows of {tensor} from llama-quantize {preset}, {len(edges)} edge cases")
    write_safetensors(GOLDENS, g)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--llama-bin", default="/tmp/llamacpp/build/bin")
    ap.add_argument("--cases", default="q3_k_m,q3_k,q4_k_m,q4_k,q5_k_m,q5_k,q6_k")
    ap.add_argument("--threads", default="2")
    ap.add_argument("--goldens", default="", help="types whose golden entries to rebuild (q3_k)")
    ap.add_argument("--lfm-convert", default=str(CONV), help="the lfm-convert to run (default: the release build)")
    a = ap.parse_args()
    conv, work, lb = a.lfm_convert, Path(a.workdir), Path(a.llama_bin)
    work.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, LD_LIBRARY_PATH=str(lb))
    f32 = work / "backbone-f32.gguf"
    if not f32.exists():
        sh([conv, "export-llama", a.checkpoint, "--quant", "f32", "-o", f32, "--threads", a.threads])
    results = {}
    for case in [c for c in a.cases.split(",") if c]:
        ltype, pure, preset = CASES[case]
        theirs, ours = work / f"llama-{case}.gguf", work / f"ours-{preset}.gguf"
        _, t_theirs = sh([lb / "llama-quantize"] + (["--pure"] if pure else []) + [f32, theirs, ltype, a.threads],
                         env=env)
        t_ours = 0.0
        if not ours.exists():
            _, t_ours = sh([conv, "export-llama", a.checkpoint, "--quant", preset, "-o", ours, "--force",
                            "--threads", a.threads])
        r = compare(ours, theirs)
        r.update(llama_type=ltype, pure=pure, preset=preset, bytes_ours=ours.stat().st_size,
                 bytes_llama=theirs.stat().st_size)
        results[case] = r
        typed = "" if pure else f"; {len(r['type_differs'])} tensors typed differently"
        print(
            f"{case}: ours {preset} vs llama-quantize {'--pure ' if pure else ''}{ltype}: {r['same_type']} tensors of "
            f"the same type, {r['differing_blocks']} of {r['blocks']} blocks differ{typed}; files "
            f"{r['bytes_ours']} / {r['bytes_llama']} bytes (llama-quantize {t_theirs:.0f} s"
            f"{f', ours {t_ours:.0f} s' if t_ours else ''})",
            flush=True,
        )
        for d in r["differing_tensors"][:10] + ([] if pure else r["type_differs"][:10]):
            print("   ", d)
    if a.goldens:
        goldens([t for t in a.goldens.split(",") if t], work, lb, f32)
    (work / "kquant_parity.json").write_text(json.dumps(results, indent=1))
    bad = any(r["differing_blocks"] or r["differing_tensors"] or (not r["pure"] and r["type_differs"])
              for r in results.values())
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
