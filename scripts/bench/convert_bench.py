#!/usr/bin/env python3
"""Conversion benchmark: lfm-convert vs llama.cpp's llama-quantize, measured in the same run.

    python3 scripts/bench/convert_bench.py --checkpoint /tmp/fullsize [--llama-bin DIR] [--repeats 3] [--threads 2]

Prints, for each task, the median wall time over the repeats, input and output bytes, throughput per input
byte and the peak anonymous memory (RssAnon sampled every 5 ms from /proc; file-backed pages of mapped
inputs are not counted, for either tool). The page cache is warmed first (every input read once).

Tasks:
  1. lfm-convert CHECKPOINT -> whole bundle at q8_0, q4_0 and q4_k_m (targets: <= 20 s, <= 512 MB anonymous;
     q4_k_m <= 2x the q4_0 time). The presets' repeats are interleaved (q8_0, q4_0, q4_k_m, q8_0, ...) so that a
     slow spell of a noisy machine falls on all of them.
  2. The same backbone both ways: `lfm-convert export-llama --quant q8_0|q4_0|q4_k_m` straight from the bf16
     checkpoint, and llama-quantize from a bf16 llama.cpp GGUF of the same backbone (made by
     `lfm-convert export-llama --quant bf16`) to Q8_0|Q4_0|Q4_K_M.
Needs: a release build (`swift build -c release`), a full-size checkpoint (scripts/reference/make_fullsize.py)
and llama.cpp's llama-quantize (built outside the repo; see README "Benchmarks").
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def rss_anon(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return 0
    return 0


def run(cmd, env=None):
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    peak = 0
    while p.poll() is None:
        peak = max(peak, rss_anon(p.pid))
        time.sleep(0.005)
    wall = time.perf_counter() - t0
    out, err = p.communicate()
    if p.returncode != 0:
        sys.exit(f"command failed ({p.returncode}): {' '.join(cmd)}\n{err.decode()[-2000:]}")
    return wall, peak, out.decode()


def warm(paths):
    for p in paths:
        with open(p, "rb") as f:
            while f.read(64 << 20):
                pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoint", default="/tmp/fullsize")
    ap.add_argument("--llama-bin", default=os.environ.get("LLAMA_CPP_BIN", "/tmp/llamacpp/build/bin"))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--workdir", default=None, help="where outputs go (default: a temp dir beside the checkpoint)")
    ap.add_argument("--presets", default="q8_0,q4_0,q4_k_m", help="whole-checkpoint presets (comma-separated)")
    a = ap.parse_args()

    lfm = ROOT / ".build/release/lfm-convert"
    if not lfm.exists():
        sys.exit("build first: swift build -c release --product lfm-convert")
    ck = Path(a.checkpoint)
    work = Path(a.workdir or tempfile.mkdtemp(prefix="lfm-bench-", dir=ck.parent))
    work.mkdir(parents=True, exist_ok=True)
    inputs = [p for p in ck.rglob("*") if p.is_file()]
    warm(inputs)
    total_in = sum(p.stat().st_size for p in inputs if p.suffix == ".safetensors")

    rows = []

    def row(label, tool, walls, peaks, in_bytes, out_path):
        med = statistics.median(walls)
        rows.append(
            dict(
                task=label,
                tool=tool,
                wall_s=med,
                walls=walls,
                in_bytes=in_bytes,
                out_bytes=out_path.stat().st_size,
                mb_per_s=in_bytes / 1e6 / med,
                peak_anon_mb=max(peaks) / 2**20,
            )
        )

    def bench(label, tool, cmd, in_bytes, out_path):
        walls, peaks = [], []
        for _ in range(a.repeats):
            if out_path.exists():
                out_path.unlink()
            w, pk, _ = run(cmd)
            walls.append(w)
            peaks.append(pk)
        row(label, tool, walls, peaks, in_bytes, out_path)

    presets = [q for q in a.presets.split(",") if q]
    whole = {q: ([], []) for q in presets}
    for _ in range(a.repeats):
        for q in presets:
            out = work / f"bundle-{q}.gguf"
            if out.exists():
                out.unlink()
            cmd = [str(lfm), str(ck), "-o", str(out), "--quant", q, "--threads", str(a.threads), "--force", "--json"]
            w, pk, _ = run(cmd)
            whole[q][0].append(w)
            whole[q][1].append(pk)
    for q in presets:
        row(f"whole checkpoint -> {q} bundle", "lfm-convert", *whole[q], total_in, work / f"bundle-{q}.gguf")

    # the same backbone, both tools
    bb_bf16 = work / "backbone-bf16.gguf"
    run(
        [
            str(lfm),
            "export-llama",
            str(ck),
            "-o",
            str(bb_bf16),
            "--quant",
            "bf16",
            "--force",
            "--threads",
            str(a.threads),
        ]
    )
    warm([bb_bf16])
    bb_in = sum(t for t in [bb_bf16.stat().st_size])
    quant = Path(a.llama_bin) / "llama-quantize"
    for q, lq in [("q8_0", "Q8_0"), ("q4_0", "Q4_0"), ("q4_k_m", "Q4_K_M")]:
        out = work / f"backbone-{q}-lfm.gguf"
        bench(
            f"backbone -> {q}",
            "lfm-convert export-llama",
            [str(lfm), "export-llama", str(ck), "-o", str(out), "--quant", q, "--threads", str(a.threads), "--force"],
            bb_in,
            out,
        )
        if quant.exists():
            out = work / f"backbone-{q}-llama.gguf"
            bench(
                f"backbone -> {q}",
                "llama-quantize",
                [str(quant), str(bb_bf16), str(out), lq, str(a.threads)],
                bb_in,
                out,
            )
        else:
            print(f"(llama-quantize not found at {quant}: skipped)", file=sys.stderr)

    print(f"{'task':32} {'tool':26} {'wall s':>8} {'in GB':>7} {'out GB':>7} {'MB/s in':>8} {'peak anon MB':>13}")
    for r in rows:
        print(
            f"{r['task']:32} {r['tool']:26} {r['wall_s']:8.2f} {r['in_bytes']/1e9:7.2f} {r['out_bytes']/1e9:7.2f} "
            f"{r['mb_per_s']:8.0f} {r['peak_anon_mb']:13.1f}"
        )
    if "q4_0" in whole and "q4_k_m" in whole:
        k, z = statistics.median(whole["q4_k_m"][0]), statistics.median(whole["q4_0"][0])
        pairs = [f"{x / y:.2f}" for x, y in zip(whole["q4_k_m"][0], whole["q4_0"][0])]
        print(f"whole checkpoint: q4_k_m takes {k / z:.2f}x the q4_0 time (medians; per repeat {', '.join(pairs)})")
    for q in ["q8_0", "q4_0", "q4_k_m"]:
        ours = [r for r in rows if r["task"] == f"backbone -> {q}" and r["tool"].startswith("lfm")]
        theirs = [r for r in rows if r["task"] == f"backbone -> {q}" and r["tool"] == "llama-quantize"]
        if ours and theirs:
            print(
                f"backbone {q}: lfm-convert is {theirs[0]['wall_s'] / ours[0]['wall_s']:.2f}x llama-quantize's speed "
                f"(same input bytes); peak anon {ours[0]['peak_anon_mb']:.0f} vs {theirs[0]['peak_anon_mb']:.0f} MB"
            )
    print(json.dumps(dict(threads=a.threads, repeats=a.repeats, rows=rows)), file=open(work / "results.json", "w"))
    print(f"(outputs and results.json in {work})")


if __name__ == "__main__":
    main()
