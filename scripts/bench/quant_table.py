#!/usr/bin/env python3
"""Size vs error of every quantized preset on one checkpoint, in one run (docs/format.md §6).

    python3 scripts/bench/quant_table.py --checkpoint /tmp/fullsize --workdir /tmp/kqp [--presets q4_0,q4_k_m,...]

For each preset: `lfm-convert CHECKPOINT --quant P --json` (time, peak anonymous memory, bytes per component),
`lfm-convert verify --against CHECKPOINT --json` (SNR per component and type, energy-weighted over the tensors),
then `lfm-run compare --baseline f32` over the default prompts (top-1 agreement and mean/max KL of the next-token
distribution) and greedy text streams (`lfm-run text --greedy`) against f32's. Writes WORKDIR/quant_table.json and
prints a markdown table. Needs a release build.
"""

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CONV, RUN = ROOT / ".build/release/lfm-convert", ROOT / ".build/release/lfm-run"
PROMPTS = ["Hello! How are you today?", "Write one sentence about the sea.", "What is 17 times 23?"]


def sh(cmd):
    r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"failed ({r.returncode}): {' '.join(map(str, cmd))}\n{r.stderr[-2000:]}")
    return r.stdout


def greedy(bundle, prompt, n):
    out = sh([RUN, "text", "--bundle", bundle, "--prompt", prompt, "--max-tokens", n, "--greedy", "--json"])
    return [
        json.loads(l)["id"] for l in out.splitlines() if l.startswith("{") and '"type":"text"' in l.replace(" ", "")
    ]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--presets", default="q4_0,q4_k_m,q5_k_m,q6_k,q8_0")
    ap.add_argument("--threads", default="2")
    ap.add_argument("--max-tokens", default="32")
    a = ap.parse_args()
    work = Path(a.workdir)
    work.mkdir(parents=True, exist_ok=True)
    presets = a.presets.split(",")
    rows = {}
    for p in ["f32"] + presets:
        b = work / f"bundle-{p}.gguf"
        conv = json.loads(sh([CONV, a.checkpoint, "-o", b, "--quant", p, "--force", "--json", "--threads", a.threads]))
        ver = json.loads(sh([CONV, "verify", b, "--against", a.checkpoint, "--json", "--threads", a.threads]))
        snr = {g["group"]: (g["error"]["snr_db"], g["tensors"]) for g in ver["per_group"]}
        rows[p] = {"bytes": b.stat().st_size, "convert": conv, "snr": snr}
        print(
            f"{p}: {b.stat().st_size} bytes, {conv['seconds']:.1f} s, peak anon {conv['peak_anon_bytes']}", flush=True
        )
    cmp = sh(
        [
            RUN,
            "compare",
            "--baseline",
            work / "bundle-f32.gguf",
            *sum([["--bundle", work / f"bundle-{p}.gguf"] for p in presets], []),
            "--max-tokens",
            a.max_tokens,
            "--threads",
            a.threads,
            "--json",
        ]
    )
    for line in cmp.splitlines():
        if line.startswith("{"):
            j = json.loads(line)
            p = Path(j["bundle"]).name[len("bundle-") : -len(".gguf")]
            rows[p]["compare"] = j
    ref = {q: greedy(work / "bundle-f32.gguf", q, a.max_tokens) for q in PROMPTS}
    for p in presets:
        same = 0
        total = 0
        for q in PROMPTS:
            got = greedy(work / f"bundle-{p}.gguf", q, a.max_tokens)
            k = 0
            while k < min(len(got), len(ref[q])) and got[k] == ref[q][k]:
                k += 1
            same += k
            total += len(ref[q])
        rows[p]["greedy_prefix"] = [same, total]
    (work / "quant_table.json").write_text(json.dumps(rows, indent=1))
    print(
        "\n| preset | bundle bytes | backbone bytes | conv. s | peak anon MB "
        "| top-1 | mean KL | max KL | greedy prefix |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for p in presets:
        r = rows[p]
        bb = sum(c["bundle_bytes"] for c in r["convert"]["components"] if c["component"] == "backbone")
        c = r.get("compare", {})
        print(
            f"| {p} | {r['bytes']} | {bb} | {r['convert']['seconds']:.1f} |"
            f" {r['convert']['peak_anon_bytes'] / 1e6:.0f} |"
            f" {100 * c.get('top1_agreement', 0):.1f}% | {c.get('mean_kl', 0):.4f} | {c.get('max_kl', 0):.3f} |"
            f" {r['greedy_prefix'][0]}/{r['greedy_prefix'][1]} |"
        )
    print("\n| preset | group (component type) | tensors | SNR dB |\n|---|---|---|---|")
    for p in presets:
        for k, (v, n) in sorted(rows[p]["snr"].items()):
            if v >= 999:
                continue  # stored exactly
            print(f"| {p} | {k} | {n} | {v:.1f} |")


if __name__ == "__main__":
    main()
