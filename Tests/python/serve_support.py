"""Shared by the Python tests of `lfm-run serve` and scripts/page_check.py: the tiny bundle, a server subprocess on
127.0.0.1 port 0, and test audio (the fixture WAV resampled, silence, noise). Stdlib only (numpy is not needed)."""

import array, math, os, random, re, shutil, subprocess, tempfile, threading, time, wave

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURES = os.path.join(ROOT, "Tests", "Fixtures")
SPEECH_WAV = os.path.join(FIXTURES, "audio", "speech.wav")


def tool(bin_dir, name):
    p = os.path.join(bin_dir, name)
    if not os.access(p, os.X_OK):
        raise SystemExit(f"{p} is missing: build first (swift build --build-tests)")
    return p


def build_bundle(bin_dir, work):
    """The tiny-a fixture as a q8_0 bundle, made as scripts/demo.sh does (fixture-weights regenerates the
    detokenizer weights from their recipe, lfm-convert writes the GGUF)."""
    ckpt = os.path.join(work, "tiny-a")
    out = os.path.join(work, "tiny-a.gguf")
    if os.path.exists(out):
        return out
    shutil.copytree(os.path.join(FIXTURES, "tiny-a", "model"), ckpt)
    for cmd in (
        [tool(bin_dir, "fixture-weights"), ckpt],
        [tool(bin_dir, "lfm-convert"), ckpt, "-o", out, "--quant", "q8_0"],
    ):
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed ({r.returncode}): {r.stderr.strip()[-2000:]}")
    return out


class Server:
    """`lfm-run serve` on a free loopback port; stderr is drained (and kept) so the server never blocks on it."""

    def __init__(self, lfm_run, bundle, extra=(), timeout=120):
        self.proc = subprocess.Popen(
            [lfm_run, "serve", "--bundle", bundle, "--port", "0", "--threads", "2", *extra],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.log = []
        self.port = None
        deadline = time.time() + timeout
        while self.port is None:
            line = self.proc.stderr.readline()
            if not line or time.time() > deadline:
                self.proc.kill()
                raise RuntimeError("serve did not start: " + "".join(self.log)[-2000:])
            self.log.append(line)
            m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", line)
            if m:
                self.port = int(m.group(1))
        threading.Thread(target=self._drain, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.port}"

    def _drain(self):
        for line in self.proc.stderr:
            self.log.append(line)

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        """SIGTERM; the exit status."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def read_wav(path):
    """(mono float samples, rate) of a 16-bit PCM WAV."""
    w = wave.open(path)
    assert w.getsampwidth() == 2, f"{path}: 16-bit PCM expected"
    ch, rate = w.getnchannels(), w.getframerate()
    a = array.array("h", w.readframes(w.getnframes()))
    return [sum(a[i : i + ch]) / (ch * 32768.0) for i in range(0, len(a), ch)], rate


def resample(x, src, dst):
    """Linear interpolation: enough for test input."""
    if src == dst:
        return list(x)
    n = int(len(x) * dst / src)
    out = []
    for i in range(n):
        t = i * src / dst
        j = int(t)
        f = t - j
        a = x[j]
        b = x[j + 1] if j + 1 < len(x) else a
        out.append(a + (b - a) * f)
    return out


def speech(rate=24000, gain=1.0):
    """The fixture's spoken clip at `rate`, scaled so its peak is `gain` × 0.9."""
    x, r = read_wav(SPEECH_WAV)
    peak = max(abs(v) for v in x) or 1.0
    return [v * 0.9 * gain / peak for v in resample(x, r, rate)]


def noise(seconds, amplitude, rate=24000, seed=7):
    g = random.Random(seed)
    return [amplitude * (2 * g.random() - 1) for _ in range(int(seconds * rate))]


def silence(seconds, rate=24000):
    return [0.0] * int(seconds * rate)


def pcm16(x):
    return array.array("h", (max(-32768, min(32767, int(round(v * 32767)))) for v in x)).tobytes()


def floats(pcm):
    a = array.array("h")
    a.frombytes(pcm[: len(pcm) // 2 * 2])
    return [v / 32768.0 for v in a]


def wav_bytes(x, rate):
    import io

    b = io.BytesIO()
    w = wave.open(b, "wb")
    w.setnchannels(1)
    w.setsampwidth(2)
    w.setframerate(rate)
    w.writeframes(pcm16(x))
    w.close()
    return b.getvalue()


def rms(x):
    return math.sqrt(sum(v * v for v in x) / max(len(x), 1))


def tempdir(tag):
    return tempfile.mkdtemp(prefix=f"lfm-{tag}.")


if __name__ == "__main__":
    # builds the tiny bundle into a folder and prints its path: scripts/test.sh shares one between its checks
    import argparse

    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(ROOT, ".build", "debug"))
    ap.add_argument("--work", required=True)
    a = ap.parse_args()
    print(build_bundle(a.bin, a.work))
