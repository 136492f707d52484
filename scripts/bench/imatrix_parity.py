#!/usr/bin/env python3
"""Byte parity of importance-weighted quantization with llama.cpp (docs/format.md §6.2).

    python3 scripts/bench/imatrix_parity.py --checkpoint /tmp/fullsize --imatrix FILE --workdir /tmp/imxp \\
        --llama-bin /tmp/llamacpp/build/bin [--cases q4_0,q4_k_m,q6_k] [--goldens]

Exports the checkpoint's backbone as F32 (`lfm-convert export-llama --quant f32`), runs llama.cpp's
`llama-quantize --imatrix FILE` on it (Q4_0 with --pure: llama.cpp's Q4_0 mix would move the first ffn_down layers
to Q4_1, a type we do not have; Q4_K_M and Q6_K with their mixes), runs our `export-llama --quant P --imatrix FILE`,
and compares the two files tensor by tensor: tensors of the same type block by block, the rest reported. With
--goldens it also rebuilds Tests/Fixtures/quant/weighted_goldens.safetensors with scripts/bench/imatrix_goldens.c
against the same build's libggml-base. Needs a release build of lfm-convert and the `gguf` Python package.
llama.cpp is built outside the repository and never committed.
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from gguf import GGUFReader
from gguf.constants import GGML_QUANT_SIZES

ROOT = Path(__file__).resolve().parents[2]
CONV = ROOT / ".build/release/lfm-convert"
CASES = {"q4_0": ("Q4_0", True), "q4_k_m": ("Q4_K_M", False), "q5_k_m": ("Q5_K_M", False), "q6_k": ("Q6_K", False)}


def sh(cmd, env=None):
    t = time.time()
    r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, env=env)
    if r.returncode != 0:
        sys.exit(f"failed ({r.returncode}): {' '.join(map(str, cmd))}\n{r.stderr[-3000:]}")
    return r.stdout, time.time() - t


def tensors(path):
    return {t.name: t for t in GGUFReader(path).tensors}


def compare(ours, theirs):
    a, b = tensors(ours), tensors(theirs)
    out = {"same_type": 0, "blocks": 0, "differing_blocks": 0, "differing_tensors": [], "type_differs": []}
    for name in sorted(set(a) | set(b)):
        if name not in a or name not in b:
            out["type_differs"].append(f"{name}: only in {'ours' if name in a else 'llama.cpp'}")
            continue
        x, y = a[name], b[name]
        if x.tensor_type != y.tensor_type:
            out["type_differs"].append(f"{name}: ours {x.tensor_type.name}, llama.cpp {y.tensor_type.name}")
            continue
        out["same_type"] += 1
        bx, by = np.asarray(x.data).view(np.uint8).reshape(-1), np.asarray(y.data).view(np.uint8).reshape(-1)
        block = GGML_QUANT_SIZES[x.tensor_type][1]
        if bx.size != by.size:
            out["differing_tensors"].append(f"{name}: {bx.size} vs {by.size} bytes")
            continue
        nb = bx.size // block
        diff = int(np.any(bx.reshape(nb, block) != by.reshape(nb, block), axis=1).sum())
        out["blocks"] += nb
        out["differing_blocks"] += diff
        if diff:
            out["differing_tensors"].append(f"{name} ({x.tensor_type.name}): {diff} of {nb} blocks differ")
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--imatrix", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--llama-bin", default="/tmp/llamacpp/build/bin")
    ap.add_argument("--cases", default="q4_0,q4_k_m,q6_k")
    ap.add_argument("--threads", default="2")
    ap.add_argument("--goldens", action="store_true")
    ap.add_argument("--lfm-convert", default=str(CONV), help="the lfm-convert to run (default: the release build)")
    a = ap.parse_args()
    conv = a.lfm_convert
    work = Path(a.workdir)
    work.mkdir(parents=True, exist_ok=True)
    lb = Path(a.llama_bin)
    env = dict(os.environ, LD_LIBRARY_PATH=str(lb))
    if a.goldens:
        inc = lb.parent.parent / "ggml/include"
        exe = work / "imatrix_goldens"
        src = ROOT / "scripts/bench/imatrix_goldens.c"
        sh(["cc", "-O2", f"-I{inc}", src, f"-L{lb}", "-lggml-base", "-lm", "-o", exe])
        print(sh([exe, ROOT / "Tests/Fixtures/quant/weighted_goldens.safetensors"], env=env)[0].strip())
    f32 = work / "backbone-f32.gguf"
    if not f32.exists():
        sh([conv, "export-llama", a.checkpoint, "--quant", "f32", "-o", f32, "--threads", a.threads])
    results = {}
    for case in a.cases.split(","):
        ltype, pure = CASES[case]
        theirs, ours = work / f"llama-{case}.gguf", work / f"ours-{case}.gguf"
        cmd = [lb / "llama-quantize", "--imatrix", a.imatrix] + (["--pure"] if pure else [])
        _, t_theirs = sh(cmd + [f32, theirs, ltype, a.threads], env=env)
        _, t_ours = sh(
            [conv, "export-llama", a.checkpoint, "--quant", case, "--imatrix", a.imatrix, "-o", ours, "--force"]
            + ["--threads", a.threads]
        )
        r = compare(ours, theirs)
        r.update(seconds_ours=round(t_ours, 1), seconds_llama=round(t_theirs, 1), llama_type=ltype, pure=pure)
        results[case] = r
        print(
            f"{case} vs {ltype}{' --pure' if pure else ''}: {r['same_type']} tensors of the same type, "
            f"{r['differing_blocks']} of {r['blocks']} blocks differ; {len(r['type_differs'])} tensors typed "
            f"differently; ours {t_ours:.0f} s, llama-quantize {t_theirs:.0f} s",
            flush=True,
        )
        for d in r["differing_tensors"][:10]:
            print("   ", d)
    (work / "imatrix_parity.json").write_text(json.dumps(results, indent=1))
    sys.exit(1 if any(r["differing_blocks"] or r["differing_tensors"] for r in results.values()) else 0)


if __name__ == "__main__":
    main()
