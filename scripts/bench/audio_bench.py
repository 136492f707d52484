#!/usr/bin/env python3
"""Audio-side benchmark on the full-size random checkpoint: encoder, ASR, speech-to-speech latency, TTS speed.

    python3 scripts/bench/audio_bench.py --checkpoint /tmp/fullsize [--types q8_0,q4_0] [-r 3] [--threads 2]

For each type (bundles made with `lfm-convert --quant T`), 2 threads, medians of the repeats:
- encoder (resample + mel excluded) for 4 s and 30 s of synthetic speech (`scripts/bench/make_speech_wav.py`) and ASR
  of 30 s with a fixed 100-token transcript (`lfm-run bench --audio`): real-time factor = audio s / wall s;
- `lfm-run chat --audio 4s.wav -o reply.wav` (interleaved mode, the real command): time from the start of the turn
  (WAV read) to the first decoded sample written, with its breakdown;
- TTS speed with each decoder (`lfm-run bench --speech-frames 50`): audio seconds per wall second and per-frame
  costs of the LM step, the depthformer and the decoder.
Peer (with --mtmd): llama.cpp's `llama-mtmd-cli` on the same random checkpoint — the backbone from
`lfm-convert export-llama` and the conformer from llama.cpp's own converter (`convert_hf_to_gguf.py --mmproj
--outtype q8_0`, same checkpoint folder): its "encoding done in N ms" for 4 s and 30 s, and the wall time of an ASR of
30 s with 100 tokens (`-n 100 --ignore-eos`, process start to exit, so model loading included; ours is given with
its load time added). The vendored llama.cpp (llama-cpp-python 0.3.36) has no LFM2-Audio speech decoder, so TTS
and chat have no peer.
"""

import argparse
import os
import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RUN = ROOT / ".build/release/lfm-run"
CONVERT = ROOT / ".build/release/lfm-convert"


ENV = dict(os.environ)


def sh(cmd):
    p = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, env=ENV)
    if p.returncode != 0:
        sys.exit(f"failed ({p.returncode}): {' '.join(map(str, cmd))}\n{p.stderr[-2000:]}")
    return p.stdout


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", default="/tmp/fullsize")
    ap.add_argument("--types", default="q8_0,q4_0")
    ap.add_argument("-r", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--workdir", default="/tmp/lfm-audio-bench")
    ap.add_argument(
        "--tier", default=None, help="force lfm-run's kernel tier (LFM_CPU), e.g. avx2 on an AVX-512 machine"
    )
    ap.add_argument(
        "--mtmd", action="store_true", help="also run llama.cpp's llama-mtmd-cli (see --llama-bin, --llama-src)"
    )
    ap.add_argument("--llama-bin", default="/tmp/llamacpp/build/bin")
    ap.add_argument(
        "--llama-src",
        default=None,
        help="llama.cpp source tree (for convert_hf_to_gguf.py); default: "
        "the llama-cpp-python sdist under /tmp/llamacpp",
    )
    ap.add_argument("--python", default="/tmp/refenv/bin/python", help="a Python with torch for llama.cpp's converter")
    a = ap.parse_args()
    if a.tier:
        ENV["LFM_CPU"] = a.tier
    print(f"lfm-run kernel tier: {a.tier or 'best for this CPU'} (LFM_CPU)")
    w = Path(a.workdir)
    w.mkdir(parents=True, exist_ok=True)
    for s in (4, 30):
        if not (w / f"s{s}.wav").exists():
            sh([sys.executable, ROOT / "scripts/bench/make_speech_wav.py", w / f"s{s}.wav", "--seconds", s])
    rows = []
    for t in a.types.split(","):
        b = w / f"full-{t}.gguf"
        if not b.exists():
            sh([CONVERT, a.checkpoint, "-o", b, "--quant", t, "--force"])
        th = ["--threads", a.threads]
        e4 = json.loads(sh([RUN, "bench", "--bundle", b, "--audio", w / "s4.wav", "-n", 0, "-r", a.r, "--json"] + th))
        asr = json.loads(
            sh([RUN, "bench", "--bundle", b, "--audio", w / "s30.wav", "-n", 100, "-r", a.r, "--json"] + th)
        )
        chats = []
        for _ in range(a.r):
            out = sh(
                [
                    RUN,
                    "chat",
                    "--bundle",
                    b,
                    "--audio",
                    w / "s4.wav",
                    "-o",
                    w / "reply.wav",
                    "--max-tokens",
                    30,
                    "--json",
                ]
                + th
            )
            chats.append(json.loads(out.strip().splitlines()[-1]))
        chats.sort(key=lambda d: d["time_to_first_audio"])
        c = chats[len(chats) // 2]
        tts = {}
        for d in ("detokenizer", "mimi"):
            tts[d] = json.loads(
                sh([RUN, "bench", "--bundle", b, "--speech-frames", 50, "--decoder", d, "-r", a.r, "--json"] + th)
            )
        rows.append((t, e4, asr, c, tts))
    if a.mtmd:
        mtmd_rows = run_mtmd(a, w, rows)
    print(f"\n## Audio benchmark ({a.threads} threads, medians of {a.r})\n")
    print(
        "| type | encoder 4 s | encoder 30 s | ASR 30 s (100 tokens) | chat: first audio (4 s question) "
        "| TTS detokenizer | TTS Mimi |"
    )
    print("|---|---|---|---|---|---|---|")
    for t, e4, asr, c, tts in rows:
        print(
            f"| {t} | {1000 * e4['encoder_seconds']:.0f} ms | {1000 * asr['encoder_seconds']:.0f} ms | "
            f"{asr['total_seconds']:.2f} s = {asr['real_time_factor']:.2f}x | {c['time_to_first_audio']:.3f} s | "
            f"{tts['detokenizer']['real_time_factor']:.2f}x | {tts['mimi']['real_time_factor']:.2f}x |"
        )
    print(
        "\nChat latency breakdown (median run): read+mel, encoder, prefill, text steps, first frame (depthformer), "
        "decoder:\n"
    )
    print(
        "| type | read+mel | encoder | prefill (positions) | text steps → first frame | depthformer | first decode "
        "| first audio |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for t, e4, asr, c, tts in rows:
        steps = (
            c["time_to_first_frame"]
            - c["mel_seconds"]
            - c["encoder_seconds"]
            - c["prefill_seconds"]
            - c["first_frame_head_seconds"]
        )
        print(
            f"| {t} | {1000 * c['mel_seconds']:.0f} ms | {1000 * c['encoder_seconds']:.0f} ms | "
            f"{1000 * c['prefill_seconds']:.0f} ms "
            f"({c['prompt_tokens']}) | {1000 * steps:.0f} ms ({c['text_steps_before_audio']} steps) | "
            f"{1000 * c['first_frame_head_seconds']:.0f} ms | {1000 * c['first_frame_decode_seconds']:.0f} ms | "
            f"{c['time_to_first_audio']:.3f} s |"
        )
    print("\nTTS per frame (80 ms of audio): LM step, depthformer, decoder:\n")
    print("| type | decoder | LM | depthformer | decoder | real time |")
    print("|---|---|---|---|---|---|")
    for t, e4, asr, c, tts in rows:
        for d, r in tts.items():
            print(
                f"| {t} | {d} | {r['lm_ms_per_frame']:.1f} ms | {r['depthformer_ms_per_frame']:.1f} ms | "
                f"{r['decoder_ms_per_frame']:.1f} ms | {r['real_time_factor']:.2f}x |"
            )
    print(
        "\nASR 30 s breakdown: "
        + "; ".join(
            f"{t}: mel {r[2]['mel_seconds']:.2f} s, encoder {r[2]['encoder_seconds']:.2f} s, "
            f"prefill {r[2]['prefill_seconds']:.2f} s "
            f"({r[2]['prompt_positions']} positions), decode {r[2]['decode_seconds']:.2f} s"
            for r in rows
            for t in [r[0]]
        )
    )


def run_mtmd(a, w, rows):
    import glob
    import re
    import time

    src = a.llama_src or (glob.glob("/tmp/llamacpp/llama_cpp_python-*/vendor/llama.cpp") or [None])[0]
    cli = Path(a.llama_bin) / "llama-mtmd-cli"
    if not src or not cli.exists():
        sys.exit("--mtmd needs llama-mtmd-cli (cmake --build build --target llama-mtmd-cli) and the llama.cpp sources")
    mmproj = w / "mmproj-q8_0.gguf"
    if not mmproj.exists():
        sh(
            [
                a.python,
                Path(src) / "convert_hf_to_gguf.py",
                a.checkpoint,
                "--mmproj",
                "--outfile",
                mmproj,
                "--outtype",
                "q8_0",
            ]
        )
    out = []
    for t, *_ in rows:
        ll = w / f"llama-{t}.gguf"
        if not ll.exists():
            sh([CONVERT, "export-llama", a.checkpoint, "-o", ll, "--quant", t, "--force"])
        enc = {}
        for s in (4, 30):
            ms = []
            for _ in range(a.r):
                p = subprocess.run(
                    [
                        str(cli),
                        "-m",
                        str(ll),
                        "--mmproj",
                        str(mmproj),
                        "--audio",
                        str(w / f"s{s}.wav"),
                        "-p",
                        "Perform ASR.",
                        "-n",
                        "1",
                        "-t",
                        str(a.threads),
                        "--temp",
                        "0",
                    ],
                    capture_output=True,
                )
                m = re.search(r"encoding done in (\d+) ms", (p.stdout + p.stderr).decode("utf-8", "replace"))
                if m:
                    ms.append(int(m.group(1)))
            enc[s] = statistics.median(ms) if ms else float("nan")
        walls = []
        for _ in range(a.r):
            t0 = time.perf_counter()
            subprocess.run(
                [
                    str(cli),
                    "-m",
                    str(ll),
                    "--mmproj",
                    str(mmproj),
                    "--audio",
                    str(w / "s30.wav"),
                    "-p",
                    "Perform ASR.",
                    "-n",
                    "100",
                    "--ignore-eos",
                    "-t",
                    str(a.threads),
                    "--temp",
                    "0",
                ],
                capture_output=True,
            )
            walls.append(time.perf_counter() - t0)
        out.append((t, enc, statistics.median(walls)))
    print("\n## Side by side with llama.cpp mtmd (same checkpoint, 2 threads, medians)\n")
    print(
        "| type | encode 4 s: ours (mel + encoder) | llama.cpp | encode 30 s: ours | llama.cpp "
        "| ASR 30 s, 100 tokens, incl. load: ours | llama.cpp |"
    )
    print("|---|---|---|---|---|---|---|")
    for (t, e4, asr, c, tts), (_, enc, wall) in zip(rows, out):
        o4 = 1000 * (e4["mel_seconds"] + e4["encoder_seconds"])
        o30 = 1000 * (asr["mel_seconds"] + asr["encoder_seconds"])
        ours = asr["total_seconds"] + c.get("load_seconds", 0)
        print(
            f"| {t} | {o4:.0f} ms | {enc[4]:.0f} ms ({enc[4] / o4:.2f}x) | "
            f"{o30:.0f} ms | {enc[30]:.0f} ms ({enc[30] / o30:.2f}x) | "
            f"{ours:.2f} s | {wall:.2f} s ({wall / ours:.2f}x) |"
        )
    return out


if __name__ == "__main__":
    main()
