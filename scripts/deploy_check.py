#!/usr/bin/env python3
"""docs/deploy.md on loopback: two `lfm-run serve` processes behind nginx (Debian) configured exactly as the
document shows (its nginx block, ports substituted), checked through nginx: conversation affinity on
X-Conversation-Id, a conversation that continues across requests, unbuffered streams, the realtime WebSocket, an
upload. Stops everything it started.

usage: scripts/deploy_check.py [--bin .build/debug] [--bundle B] [--keep]
needs: nginx (Debian), websockets (PyPI)
"""

import argparse, base64, http.client, json, os, re, shutil, socket, subprocess, sys, tempfile, time, uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "Tests", "python"))
import serve_support as S


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def nginx_block():
    doc = open(os.path.join(ROOT, "docs", "deploy.md")).read()
    m = re.search(r"```nginx\n(.*?)```", doc, re.S)
    if not m:
        raise SystemExit("docs/deploy.md has no ```nginx block")
    return m.group(1)


def main_conf(tmp, site):
    """A main configuration around the document's block, with every file of nginx in `tmp`."""
    user = "user root;\n" if os.geteuid() == 0 else ""
    temps = "".join(f"    {k}_temp_path {tmp}/{k};\n" for k in ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"])
    return (
        f"{user}worker_processes 1;\npid {tmp}/nginx.pid;\nerror_log {tmp}/error.log warn;\ndaemon off;\n"
        f"events {{ worker_connections 512; }}\nhttp {{\n    access_log {tmp}/access.log;\n{temps}"
        f"    include {site};\n}}\n"
    )


class Check:
    def __init__(self):
        self.failed = 0

    def __call__(self, ok, what):
        print(("ok    " if ok else "FAIL  ") + what)
        if not ok:
            self.failed += 1


def request(port, method, path, body=None, headers=None, timeout=300):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        c.close()


def chat(port, conv, text="Hello.", max_tokens=2, header=True, body_id=True):
    o = {"messages": [{"role": "user", "content": text}], "max_tokens": max_tokens}
    if body_id:
        o["conversation"] = conv
    h = {"Content-Type": "application/json"}
    if header:
        h["X-Conversation-Id"] = conv
    return request(port, "POST", "/v1/chat/completions", json.dumps(o), h)


def active(port):
    _, _, b = request(port, "GET", "/metrics")
    m = re.search(r"^lfm_active_conversations (\S+)$", b.decode(), re.M)
    return int(float(m.group(1)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(ROOT, ".build", "debug"))
    ap.add_argument("--bundle")
    ap.add_argument("--keep", action="store_true", help="keep the temp folder (configuration, nginx logs)")
    a = ap.parse_args()
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None)
    if not nginx:
        raise SystemExit("deploy check: FAILED: nginx not found (apt-get install nginx)")
    tmp = tempfile.mkdtemp(prefix="lfm-deploy.")
    bundle = a.bundle or S.build_bundle(a.bin, tmp)
    lfm = S.tool(a.bin, "lfm-run")
    servers = [S.Server(lfm, bundle, ["--max-conversations", "32"]) for _ in range(2)]
    front = free_port()
    site = nginx_block()
    site = site.replace("127.0.0.1:8081", f"127.0.0.1:{servers[0].port}")
    site = site.replace("127.0.0.1:8082", f"127.0.0.1:{servers[1].port}")
    site = site.replace("listen 127.0.0.1:8080", f"listen 127.0.0.1:{front}")
    open(os.path.join(tmp, "lfm.conf"), "w").write(site)
    open(os.path.join(tmp, "nginx.conf"), "w").write(main_conf(tmp, os.path.join(tmp, "lfm.conf")))
    ng = subprocess.Popen(
        [nginx, "-p", tmp, "-c", os.path.join(tmp, "nginx.conf"), "-e", os.path.join(tmp, "error.log")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    check = Check()
    try:
        deadline = time.time() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", front), timeout=1).close()
                break
            except OSError:
                if ng.poll() is not None or time.time() > deadline:
                    raise SystemExit(f"deploy check: FAILED: nginx did not start: {ng.stderr.read()[-2000:]}")
                time.sleep(0.1)
        backends = {f"127.0.0.1:{s.port}": s for s in servers}
        print(f"nginx on 127.0.0.1:{front}, backends {', '.join(backends)}; files in {tmp}")
        st, h, _ = request(front, "GET", "/health")
        check(st == 200 and h.get("x-upstream") in backends, f"/health through nginx ({h.get('x-upstream')})")
        # affinity: ids until both backends are used (consistent hashing spreads them), three requests each
        routed = {}
        for i in range(32):
            conv = f"conv-{i}-{uuid.uuid4().hex[:8]}"
            seen = set()
            for turn in range(3):
                st, h, b = chat(front, conv, text=f"Turn {turn}.", body_id=turn != 1)
                if st != 200:
                    check(False, f"chat {conv} turn {turn}: {st} {b[:200]}")
                seen.add(h.get("x-upstream"))
            check(len(seen) == 1, f"{conv}: 3 requests on {', '.join(sorted(map(str, seen)))}")
            routed[conv] = seen.pop()
            if i >= 3 and len(set(routed.values())) == 2:
                break
        per = {b: sum(1 for v in routed.values() if v == b) for b in backends}
        check(len([n for n in per.values() if n]) == 2, f"ids spread over both backends: {per}")
        # each backend holds exactly the conversations routed to it: none was started twice
        held = {b: active(s.port) for b, s in backends.items()}
        check(held == per, f"kept conversations per backend (its /metrics) {held} = routed {per}")
        # continuity: while a streamed turn of one id runs, a second request of that id is busy (409) -- the same
        # process saw both; the first SSE chunk arrives while the turn runs
        conv = next(iter(routed))
        c = http.client.HTTPConnection("127.0.0.1", front, timeout=120)
        body = {"messages": [{"role": "user", "content": "Talk."}], "max_tokens": 100000, "stream": True}
        t0 = time.time()
        c.request(
            "POST",
            "/v1/chat/completions",
            json.dumps(body),
            {"Content-Type": "application/json", "X-Conversation-Id": conv},
        )
        r = c.getresponse()
        first = r.readline()
        t_first = time.time() - t0
        check(
            r.status == 200 and first.startswith(b"data: {"),
            f"a streamed turn's first chunk after {t_first:.2f} s, turn still running",
        )
        st, h, b = chat(front, conv)
        code = json.loads(b).get("error", {}).get("code") if st != 200 else None
        check(st == 409 and code == "conversation_busy", f"same id meanwhile: {st} {code} (the same process)")
        c.close()
        deadline = time.time() + 10
        while True:
            st, h, _ = chat(front, conv)
            if st == 200 or time.time() > deadline:
                break
            time.sleep(0.1)
        check(st == 200, f"after the client left, the conversation continues: {st} on {h.get('x-upstream')}")
        # a mismatch between body and header is refused, not routed somewhere odd
        o = {"messages": [{"role": "user", "content": "x"}], "max_tokens": 1, "conversation": "a"}
        st, _, b = request(
            front,
            "POST",
            "/v1/chat/completions",
            json.dumps(o),
            {"Content-Type": "application/json", "X-Conversation-Id": "b"},
        )
        check(st == 400, f"body and header ids that differ: {st}")
        # an upload through the proxy
        wav = open(S.SPEECH_WAV, "rb").read()
        bd = "lfmdeploy"
        mp = (
            (
                f'--{bd}\r\nContent-Disposition: form-data; name="max_tokens"\r\n\r\n4\r\n'
                f"--{bd}\r\nContent-Disposition: "
                f'form-data; name="file"; filename="q.wav"\r\n\r\n'
            ).encode()
            + wav
            + f"\r\n--{bd}--\r\n".encode()
        )
        st, _, b = request(
            front, "POST", "/v1/audio/transcriptions", mp, {"Content-Type": f"multipart/form-data; boundary={bd}"}
        )
        check(st == 200 and "text" in json.loads(b), f"a transcription upload through nginx: {st}")
        # the realtime WebSocket through the proxy
        from websockets.sync.client import connect

        with connect(f"ws://127.0.0.1:{front}/v1/realtime", open_timeout=30) as ws:
            e1 = json.loads(ws.recv(timeout=60))
            ws.send(json.dumps({"type": "session.update", "session": {"audio": {"input": {"turn_detection": None}}}}))
            e2 = json.loads(ws.recv(timeout=60))
            pcm = S.pcm16(S.speech())
            ws.send(json.dumps({"type": "input_audio_buffer.append", "audio": base64.b64encode(pcm).decode()}))
            ws.send(json.dumps({"type": "input_audio_buffer.commit"}))
            e3 = json.loads(ws.recv(timeout=60))
        check(
            [e1["type"], e2["type"], e3["type"]]
            == ["session.created", "session.updated", "input_audio_buffer.committed"],
            f"realtime through nginx: {e1['type']}, {e2['type']}, {e3['type']}",
        )
    finally:
        ng.terminate()
        ng.wait()
        rcs = [s.stop() for s in servers]
        if not a.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    check(rcs == [0, 0], f"both servers exit 0 on SIGTERM: {rcs}")
    print("deploy check:", "ok" if check.failed == 0 else f"FAILED ({check.failed})")
    sys.exit(0 if check.failed == 0 else 1)


if __name__ == "__main__":
    main()
