#!/usr/bin/env python3
"""Text-side benchmark: lfm-run vs llama.cpp's llama-bench on the SAME random weights, in the same run.

    python3 scripts/bench/text_bench.py --checkpoint /tmp/fullsize [--llama-bin DIR] [--types f16,q8_0,q4_0] \\
        [-p 512] [-n 128] [-r 3]

For each type: our bundle (`lfm-convert --quant T`) and llama.cpp's `lfm2` GGUF of the same backbone
(`lfm-convert export-llama --quant T`: byte-identical quantized blocks) are measured with the same prompt and
generation sizes and 2 threads: prefill (ppN) and decode (tgN) tokens/s, medians of the repeats; the ratio to
llama.cpp; the machine's read bandwidth measured in the same run and the share of the bandwidth bound that
decode reaches (bound = bandwidth / backbone bytes per token); peak RSS of each process; and lfm-run's
open-to-first-token for a short prompt. Needs a release build and llama-bench (see README "Benchmarks").
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


ENV = dict(os.environ)


def peak_rss_run(cmd):
    """Runs cmd, returns (stdout, peak VmHWM bytes)."""
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV)
    hwm = 0
    while p.poll() is None:
        try:
            for line in open(f"/proc/{p.pid}/status"):
                if line.startswith("VmHWM:"):
                    hwm = max(hwm, int(line.split()[1]) * 1024)
        except OSError:
            pass
        time.sleep(0.02)
    out, err = p.communicate()
    if p.returncode != 0:
        sys.exit(f"failed ({p.returncode}): {' '.join(map(str, cmd))}\n{err.decode()[-3000:]}")
    return out.decode(), hwm


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoint", default="/tmp/fullsize")
    ap.add_argument("--llama-bin", default=os.environ.get("LLAMA_CPP_BIN", "/tmp/llamacpp/build/bin"))
    ap.add_argument("--types", default="f16,q8_0,q4_0")
    ap.add_argument("-p", type=int, default=512)
    ap.add_argument("-n", type=int, default=128)
    ap.add_argument("-r", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--workdir", default="/tmp/lfm-text-bench")
    ap.add_argument(
        "--tier",
        default=None,
        help="force lfm-run's kernel tier (LFM_CPU), e.g. avx2 on an AVX-512 machine; "
        "pair it with --llama-bin of a llama.cpp built for the same ISA (README, Benchmarks)",
    )
    a = ap.parse_args()
    if a.tier:
        ENV["LFM_CPU"] = a.tier
    conv, run = ROOT / ".build/release/lfm-convert", ROOT / ".build/release/lfm-run"
    if not conv.exists() or not run.exists():
        sys.exit("build first: swift build -c release")
    work = Path(a.workdir)
    work.mkdir(parents=True, exist_ok=True)
    bench = Path(a.llama_bin) / "llama-bench"
    rows = []
    for t in a.types.split(","):
        bundle, ll = work / f"bundle-{t}.gguf", work / f"backbone-{t}.gguf"
        if not bundle.exists():
            subprocess.run(
                [conv, a.checkpoint, "-o", bundle, "--quant", t, "--force"], check=True, stdout=subprocess.DEVNULL
            )
        if not ll.exists():
            subprocess.run(
                [conv, "export-llama", a.checkpoint, "-o", ll, "--quant", t, "--force"],
                check=True,
                stdout=subprocess.DEVNULL,
            )
        out, ours_rss = peak_rss_run(
            [
                run,
                "bench",
                "--bundle",
                bundle,
                "-p",
                str(a.p),
                "-n",
                str(a.n),
                "-r",
                str(a.r),
                "--threads",
                str(a.threads),
                "--json",
            ]
        )
        ours = json.loads(out)
        # bandwidth in its own process (its 1 GiB buffer must not count in the RSS above)
        bwout, _ = peak_rss_run(
            [
                run,
                "bench",
                "--bundle",
                bundle,
                "-p",
                "0",
                "-n",
                "0",
                "-r",
                "1",
                "--threads",
                str(a.threads),
                "--bandwidth",
                "--json",
            ]
        )
        bwj = json.loads(bwout)
        ours["read_bandwidth_bytes_per_second"] = bwj["read_bandwidth_bytes_per_second"]
        ours["bandwidth_bound_tokens_per_second"] = bwj["bandwidth_bound_tokens_per_second"]
        llama = {}
        llama_rss = 0
        if bench.exists():
            out, llama_rss = peak_rss_run(
                [bench, "-m", ll, "-p", str(a.p), "-n", str(a.n), "-t", str(a.threads), "-r", str(a.r), "-o", "json"]
            )
            for rec in json.loads(out):
                key = "pp" if rec["n_prompt"] > 0 else "tg"
                llama[key] = rec["avg_ts"]
        # open-to-first-token for a short prompt
        t0 = time.perf_counter()
        out, _ = peak_rss_run(
            [
                run,
                "text",
                "--bundle",
                bundle,
                "--prompt",
                "Hi!",
                "--max-tokens",
                "1",
                "--json",
                "--threads",
                str(a.threads),
            ]
        )
        wall = time.perf_counter() - t0
        done = [json.loads(l) for l in out.splitlines() if '"done"' in l][0]
        rows.append(
            dict(
                type=t,
                tier=ours.get("kernel_tier"),
                blas=ours.get("blas"),
                pp=ours["pp_tokens_per_second"],
                tg=ours["tg_tokens_per_second"],
                pp_llama=llama.get("pp"),
                tg_llama=llama.get("tg"),
                bw=ours["read_bandwidth_bytes_per_second"],
                bytes_per_token=ours["weight_bytes_per_token"],
                bound=ours["bandwidth_bound_tokens_per_second"],
                rss=ours_rss,
                rss_llama=llama_rss,
                bundle_bytes=bundle.stat().st_size,
                first_token=done["load_seconds"] + done["time_to_first_token"],
                first_token_wall=wall,
            )
        )
    print(
        f"lfm-run kernel tier {rows[0]['tier'] if rows else '?'}, BLAS {rows[0]['blas'] if rows else '?'}; "
        f"llama.cpp from {a.llama_bin}"
    )
    print(f"threads {a.threads}, pp{a.p}, tg{a.n}, medians of {a.r}")
    print(
        f"{'type':6} {'pp ours':>9} {'pp llama':>9} {'ratio':>6} {'tg ours':>8} {'tg llama':>9} {'ratio':>6} "
        f"{'GB/s':>6} {'bound':>6} {'% bound':>7} {'RSS ours':>9} {'RSS llama':>10} {'bundle':>8} {'1st tok':>8}"
    )
    for r in rows:
        ppr = r["pp"] / r["pp_llama"] if r["pp_llama"] else float("nan")
        tgr = r["tg"] / r["tg_llama"] if r["tg_llama"] else float("nan")
        print(
            f"{r['type']:6} {r['pp']:9.1f} {r['pp_llama'] or 0:9.1f} {ppr:6.2f} "
            f"{r['tg']:8.2f} {r['tg_llama'] or 0:9.2f} {tgr:6.2f} "
            f"{r['bw']/1e9:6.1f} {r['bound']:6.1f} {100*r['tg']/r['bound']:6.0f}% "
            f"{r['rss']/2**20:8.0f}M {r['rss_llama']/2**20:9.0f}M "
            f"{r['bundle_bytes']/2**20:7.0f}M {r['first_token']:7.3f}s"
        )
    json.dump(dict(p=a.p, n=a.n, r=a.r, threads=a.threads, rows=rows), open(work / "text_results.json", "w"), indent=1)


if __name__ == "__main__":
    main()
