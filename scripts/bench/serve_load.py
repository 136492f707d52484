#!/usr/bin/env python3
"""Bounded load on `lfm-run serve` over loopback: N clients for S seconds (defaults 8 and 60) on mixed routes
(streamed speech, streamed chat with audio in and out, transcriptions, health), then the figures: p50/p95 time to
first token and first audio, aggregate real-time factor (audio seconds per wall second), errors (429s counted
apart), peak RSS of the server; it checks the server still answers. Stops by itself. Stdlib only.

usage: scripts/bench/serve_load.py --bundle B [--lfm-run .build/release/lfm-run] [--clients 8] [--seconds 60]
"""

import argparse, base64, http.client, json, random, re, statistics, subprocess, threading, time, uuid

WAV = "Tests/Fixtures/audio/speech.wav"


def start(lfm, bundle, extra):
    p = subprocess.Popen(
        [lfm, "serve", "--bundle", bundle, "--port", "0"] + extra,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    while True:
        line = p.stderr.readline()
        if not line:
            raise SystemExit("server did not start")
        m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", line)
        if m:
            return p, int(m.group(1))


def rss_kb(pid):
    try:
        for l in open(f"/proc/{pid}/status"):
            if l.startswith("VmHWM:"):
                return int(l.split()[1])
    except OSError:
        return 0
    return 0


def stream(port, path, body, audio_key):
    """(status, first token s, first audio s, audio seconds)."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    t0 = time.time()
    c.request("POST", path, body=json.dumps(body), headers={"Content-Type": "application/json"})
    r = c.getresponse()
    if r.status != 200:
        r.read()
        c.close()
        return r.status, None, None, 0.0
    ft = fa = None
    pcm = 0
    buf = b""
    while True:
        b = r.read1(65536)
        if not b:
            break
        buf += b
        while b"\n\n" in buf:
            ev, buf = buf.split(b"\n\n", 1)
            if not ev.startswith(b"data: {"):
                continue
            o = json.loads(ev[6:])
            now = time.time() - t0
            if ft is None:
                ft = now
            data = audio_key(o)
            if data:
                if fa is None:
                    fa = now
                pcm += len(base64.b64decode(data)) // 2
    c.close()
    return 200, ft, fa, pcm / 24000


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bundle", required=True)
    ap.add_argument("--lfm-run", default=".build/release/lfm-run")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--max-conversations", type=int, default=6, help="below --clients, so that 429s are exercised")
    a = ap.parse_args()
    wav = base64.b64encode(open(WAV, "rb").read()).decode()
    p, port = start(a.lfm_run, a.bundle, ["--max-conversations", str(a.max_conversations)])
    stop = time.time() + a.seconds
    lock = threading.Lock()
    res = {"ttft": [], "ttfa": [], "audio": 0.0, "errors": 0, "429": 0, "ok": 0}

    def chat_audio(o):
        return ((o.get("choices") or [{}])[0].get("delta", {}).get("audio") or {}).get("data")

    def client(i):
        rnd = random.Random(i)
        while time.time() < stop:
            kind = rnd.choice(["speech", "chat", "asr", "health"])
            try:
                if kind == "speech":
                    st, ft, fa, secs = stream(
                        port,
                        "/v1/audio/speech",
                        {"input": "Speak now.", "voice": "us-female", "stream_format": "sse", "max_tokens": 80},
                        lambda o: o.get("audio"),
                    )
                elif kind == "chat":
                    st, ft, fa, secs = stream(
                        port,
                        "/v1/chat/completions",
                        {
                            "messages": [
                                {
                                    "role": "user",
                                    "content": [{"type": "input_audio", "input_audio": {"data": wav, "format": "wav"}}],
                                }
                            ],
                            "modalities": ["text", "audio"],
                            "stream": True,
                            "max_tokens": 60,
                        },
                        chat_audio,
                    )
                elif kind == "asr":
                    boundary = uuid.uuid4().hex
                    body = (
                        (
                            f'--{boundary}\r\nContent-Disposition: form-data; name="max_tokens"\r\n\r\n16\r\n'
                            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="q.wav"\r\n\r\n'
                        ).encode()
                        + open(WAV, "rb").read()
                        + f"\r\n--{boundary}--\r\n".encode()
                    )
                    c = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
                    c.request(
                        "POST",
                        "/v1/audio/transcriptions",
                        body=body,
                        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
                    )
                    r = c.getresponse()
                    r.read()
                    c.close()
                    st, ft, fa, secs = r.status, None, None, 0.0
                else:
                    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                    c.request("GET", "/health")
                    r = c.getresponse()
                    r.read()
                    c.close()
                    st, ft, fa, secs = r.status, None, None, 0.0
            except Exception:
                st, ft, fa, secs = -1, None, None, 0.0
            with lock:
                if st == 200:
                    res["ok"] += 1
                    if ft is not None:
                        res["ttft"].append(ft)
                    if fa is not None:
                        res["ttfa"].append(fa)
                    res["audio"] += secs
                elif st == 429:
                    res["429"] += 1
                    time.sleep(0.2)
                else:
                    res["errors"] += 1

    t0 = time.time()
    ts = [threading.Thread(target=client, args=(i,)) for i in range(a.clients)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    wall = time.time() - t0
    peak = rss_kb(p.pid)
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("GET", "/health")
    alive = c.getresponse().status == 200
    c.close()
    p.terminate()
    rc = p.wait()
    q = lambda xs, f: (
        statistics.quantiles(xs, n=20)[int(f * 20) - 1] if len(xs) >= 2 else (xs[0] if xs else float("nan"))
    )
    print(f"{a.clients} clients, {wall:.0f} s: {res['ok']} ok, {res['429']} deliberate 429s, {res['errors']} errors")
    print(f"time to first token  p50 {q(res['ttft'], .5):.3f} s  p95 {q(res['ttft'], .95):.3f} s")
    print(f"time to first audio  p50 {q(res['ttfa'], .5):.3f} s  p95 {q(res['ttfa'], .95):.3f} s")
    print(f"aggregate real-time factor {res['audio'] / wall:.2f} (audio s per wall s), peak RSS {peak / 1024:.0f} MB")
    print(f"alive afterwards: {alive}; exit status on SIGTERM: {rc}")


if __name__ == "__main__":
    main()
