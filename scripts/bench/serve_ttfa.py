#!/usr/bin/env python3
"""Time to first audio through `lfm-run serve` (HTTP speech and chat streams, the realtime WebSocket) beside the
CLI's own figure for the same turn. Loopback only; bounded (N runs of each); stdlib only.

usage: scripts/bench/serve_ttfa.py --bundle B [--lfm-run .build/release/lfm-run] [--runs 3] [--audio Q.wav]
"""

import argparse, base64, json, os, re, socket, struct, subprocess, sys, time, wave, statistics, http.client


def start(lfm, bundle, threads):
    p = subprocess.Popen(
        [lfm, "serve", "--bundle", bundle, "--port", "0"] + (["--threads", str(threads)] if threads else []),
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    deadline = time.time() + 300
    while time.time() < deadline:
        line = p.stderr.readline()
        m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", line)
        if m:
            return p, int(m.group(1))
    raise SystemExit("server did not start")


def first_chunk_seconds(port, path, body, marker):
    """Seconds from sending the request to the first body bytes that hold `marker`; then drains the stream."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    t0 = time.time()
    c.request("POST", path, body=json.dumps(body), headers={"Content-Type": "application/json"})
    r = c.getresponse()
    first, seen = None, b""
    while True:
        b = r.read1(65536) if hasattr(r, "read1") else r.read(4096)
        if not b:
            break
        seen = (seen + b)[-20000:]
        if first is None and (marker in seen if marker else len(seen) > 0):
            first = time.time() - t0
    c.close()
    return first


class WS:
    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=600)
        self.s.sendall(
            b"GET /v1/realtime HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            self.buf += self.s.recv(4096)
        self.buf = self.buf.split(b"\r\n\r\n", 1)[1]

    def send(self, o):
        p = json.dumps(o).encode()
        n = len(p)
        h = bytes([0x81]) + (
            bytes([0x80 | n])
            if n < 126
            else bytes([0x80 | 126]) + struct.pack(">H", n) if n < 65536 else bytes([0x80 | 127]) + struct.pack(">Q", n)
        )
        mask = b"\x01\x02\x03\x04"
        self.s.sendall(h + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(p)))

    def take(self, n):
        while len(self.buf) < n:
            d = self.s.recv(65536)
            if not d:
                raise EOFError
            self.buf += d
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def next(self):
        while True:
            h = self.take(2)
            n = h[1] & 0x7F
            if n == 126:
                n = struct.unpack(">H", self.take(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", self.take(8))[0]
            p = self.take(n)
            if h[0] & 0x0F == 1:
                return json.loads(p)


def realtime_ttfa(port, pcm24):
    ws = WS(port)
    assert ws.next()["type"] == "session.created"
    ws.send(
        {
            "type": "session.update",
            "session": {"audio": {"input": {"turn_detection": None}}, "greedy": True, "max_output_tokens": 60},
        }
    )
    ws.next()
    time.sleep(0.5)  # the prefix cache fills while the user would speak
    ws.send({"type": "input_audio_buffer.append", "audio": base64.b64encode(pcm24).decode()})
    t0 = time.time()
    ws.send({"type": "input_audio_buffer.commit"})
    ws.send({"type": "response.create"})
    first, server = None, None
    while True:
        e = ws.next()
        if e["type"] == "response.output_audio.delta" and first is None:
            first = time.time() - t0
        if e["type"] == "response.done":
            server = e["response"].get("time_to_first_audio")
            break
    ws.s.close()
    return first, server


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bundle", required=True)
    ap.add_argument("--lfm-run", default=".build/release/lfm-run")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--threads", type=int)
    ap.add_argument("--audio", default="Tests/Fixtures/audio/speech.wav", help="the spoken question (WAV)")
    a = ap.parse_args()
    w = wave.open(a.audio)
    rate, frames = w.getframerate(), w.readframes(w.getnframes())
    wav_b64 = base64.b64encode(open(a.audio, "rb").read()).decode()
    # 24 kHz PCM16 for the realtime session (nearest-sample resampling is enough to time it)
    s = struct.unpack("<%dh" % (len(frames) // 2), frames)
    n24 = int(len(s) * 24000 / rate)
    pcm24 = struct.pack("<%dh" % n24, *[s[min(len(s) - 1, int(i * rate / 24000))] for i in range(n24)])
    # the CLI, same turn
    cli = []
    for _ in range(a.runs):
        out = subprocess.run(
            [
                a.lfm_run,
                "chat",
                "--bundle",
                a.bundle,
                "--audio",
                a.audio,
                "--greedy",
                "--max-tokens",
                "60",
                "-o",
                "/tmp/serve-bench.wav",
                "--json",
            ]
            + (["--threads", str(a.threads)] if a.threads else []),
            capture_output=True,
            text=True,
        )
        done = [json.loads(l) for l in out.stdout.splitlines() if '"done"' in l]
        if done:
            cli.append(done[-1]["time_to_first_audio"])
    cli_tts = []
    for _ in range(a.runs):
        out = subprocess.run(
            [
                a.lfm_run,
                "tts",
                "--bundle",
                a.bundle,
                "--text",
                "Speak now.",
                "--voice",
                "us-female",
                "--greedy",
                "--max-tokens",
                "60",
                "-o",
                "/tmp/serve-bench.wav",
                "--json",
            ]
            + (["--threads", str(a.threads)] if a.threads else []),
            capture_output=True,
            text=True,
        )
        done = [json.loads(l) for l in out.stdout.splitlines() if '"done"' in l]
        if done:
            cli_tts.append(done[-1]["time_to_first_audio"])
    p, port = start(a.lfm_run, a.bundle, a.threads)
    try:
        speech, chat, rt, rt_server = [], [], [], []
        for _ in range(a.runs):
            speech.append(
                first_chunk_seconds(
                    port,
                    "/v1/audio/speech",
                    {
                        "input": "Speak now.",
                        "voice": "us-female",
                        "greedy": True,
                        "max_tokens": 60,
                        "response_format": "pcm",
                    },
                    None,
                )
            )
            chat.append(
                first_chunk_seconds(
                    port,
                    "/v1/chat/completions",
                    {
                        "messages": [
                            {
                                "role": "user",
                                "content": [{"type": "input_audio", "input_audio": {"data": wav_b64, "format": "wav"}}],
                            }
                        ],
                        "modalities": ["text", "audio"],
                        "stream": True,
                        "greedy": True,
                        "max_tokens": 60,
                    },
                    b'"data"',
                )
            )
            f, srv = realtime_ttfa(port, pcm24)
            rt.append(f)
            rt_server.append(srv)
    finally:
        p.terminate()
        p.wait()
    med = lambda xs: (
        statistics.median([x for x in xs if x is not None]) if any(x is not None for x in xs) else float("nan")
    )
    print(
        f"bundle {os.path.basename(a.bundle)}, question {a.audio} ({len(s) / rate:.2f} s), "
        f"{a.runs} runs, median seconds"
    )
    print(f"{'path':66} time to first audio")
    print(f"{'CLI lfm-run chat --audio (turn start → first samples)':66} {med(cli):.3f}")
    print(f"{'POST /v1/chat/completions stream (request → first audio chunk)':66} {med(chat):.3f}")
    print(f"{'WS /v1/realtime push-to-talk (commit → first delta, client)':66} {med(rt):.3f}")
    print(f"{'WS /v1/realtime (server-measured)':66} {med(rt_server):.3f}")
    # a turn that produced no audio (a random checkpoint's TTS may never start speaking) has no time to first audio
    def fmt(xs):
        xs = [x for x in xs if x]
        return f"{med(xs):.3f}" if xs else "no audio in 60 steps"

    print(f"{'CLI lfm-run tts (turn start → first samples)':66} {fmt(cli_tts)}")
    print(f"{'POST /v1/audio/speech pcm (request → first bytes, TTS)':66} {fmt(speech)}")


if __name__ == "__main__":
    main()
