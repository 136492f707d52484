#!/usr/bin/env python3
"""The live page in headless Chromium with a fake microphone fed from a WAV: it connects to /v1/realtime, the
server's VAD hears the question, and the page shows both transcripts, plays the answer and prints the time to
first audio. Keeps a screenshot. Loopback only; stops by itself.

usage: scripts/page_check.py --bundle B [--lfm-run .build/release/lfm-run] [--wav Q.wav] [--out out/page.png]
needs: Debian chromium + chromium-driver, selenium (PyPI)
"""

import argparse, os, re, subprocess, sys, tempfile, time, wave


def question_wav(src, dst):
    """0.6 s of silence, the question, 2 s of silence (so that server VAD ends the turn), 16-bit mono."""
    w = wave.open(src)
    rate, ch, width = w.getframerate(), w.getnchannels(), w.getsampwidth()
    frames = w.readframes(w.getnframes())
    assert width == 2, "16-bit WAV expected"
    o = wave.open(dst, "wb")
    o.setnchannels(ch)
    o.setsampwidth(2)
    o.setframerate(rate)
    o.writeframes(b"\0" * int(0.6 * rate) * 2 * ch + frames + b"\0" * int(2.0 * rate) * 2 * ch)
    o.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bundle", required=True)
    ap.add_argument("--lfm-run", default=".build/release/lfm-run")
    ap.add_argument("--wav", default="Tests/Fixtures/audio/speech.wav")
    ap.add_argument("--out", default="out/page.png")
    ap.add_argument("--timeout", type=float, default=120)
    a = ap.parse_args()
    from selenium import webdriver
    from selenium.webdriver.common.by import By

    p = subprocess.Popen(
        [a.lfm_run, "serve", "--bundle", a.bundle, "--port", "0"],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    port = None
    while port is None:
        line = p.stderr.readline()
        if not line:
            raise SystemExit("server did not start")
        m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", line)
        if m:
            port = int(m.group(1))
    tmp = tempfile.mkdtemp()
    mic = os.path.join(tmp, "mic.wav")
    question_wav(a.wav, mic)
    opts = webdriver.ChromeOptions()
    for f in [
        "--headless=new",
        "--no-sandbox",
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        "--use-file-for-fake-audio-capture=" + mic,
        "--autoplay-policy=no-user-gesture-required",
        "--window-size=900,700",
    ]:
        opts.add_argument(f)
    d = webdriver.Chrome(options=opts)
    ok = False
    try:
        d.get(f"http://127.0.0.1:{port}/")
        d.find_element(By.ID, "start").click()
        t0 = time.time()
        while time.time() - t0 < a.timeout:
            users = [e.text for e in d.find_elements(By.CSS_SELECTOR, "#log .user")]
            assistants = [e.text for e in d.find_elements(By.CSS_SELECTOR, "#log .assistant")]
            ttfa = d.find_element(By.ID, "ttfa").text
            if users and assistants and "first audio" in ttfa and any(u != "you: (speaking…)" for u in users):
                ok = True
                break
            time.sleep(0.5)
        os.makedirs(os.path.dirname(a.out) or ".", exist_ok=True)
        d.save_screenshot(a.out)
        played = d.execute_script("return typeof playTime === 'undefined' ? -1 : playTime")
        print(
            f"user: {users[:2]}\nassistant: {[x[:80] for x in assistants[:2]]}\n{ttfa}\nplayback scheduled to "
            f"{played:.2f} s\nscreenshot: {a.out}"
        )
        logs = d.get_log("browser") if hasattr(d, "get_log") else []
        for l in logs[:10]:
            print("console:", l.get("message"))
    finally:
        d.quit()
        p.terminate()
        p.wait()
    print("page check:", "ok" if ok else "FAILED")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
