#!/usr/bin/env python3
"""The live page in headless Chromium with a fake microphone fed from a WAV: it connects to /v1/realtime, the
server's VAD hears the question, and the page shows both transcripts, plays the answer and prints the time to
first audio. Keeps a screenshot (in a temp folder unless --out says where; its path is printed). Loopback only;
stops by itself. Part of the test command (scripts/test.sh); a missing Chromium is a failure, never a skip.

usage: scripts/page_check.py [--bundle B] [--bin .build/debug] [--wav Q.wav] [--out page.png]
  without --bundle, the tiny fixture bundle is built with the tools in --bin (as Tests/python does)
needs: Debian chromium + chromium-driver, selenium (PyPI)
"""

import argparse, os, shutil, sys, tempfile, time, wave

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "Tests", "python"))
import serve_support as S

# counts what the page's player receives: `play` is a global function of the page, called per audio delta
COUNT_AUDIO = """
window.__deltas = 0; window.__audioBytes = 0;
const orig = window.play;
window.play = d => { window.__deltas += 1; window.__audioBytes += atob(d).length; return orig(d); };
"""


def question_wav(src, dst, tail):
    """0.6 s of silence, the question, `tail` s of silence (server VAD ends the turn; Chromium loops the file, so
    the tail is also the time the answer has before the question comes again and barges in), 16-bit mono."""
    w = wave.open(src)
    rate, ch, width = w.getframerate(), w.getnchannels(), w.getsampwidth()
    frames = w.readframes(w.getnframes())
    assert width == 2, "16-bit WAV expected"
    o = wave.open(dst, "wb")
    o.setnchannels(ch)
    o.setsampwidth(2)
    o.setframerate(rate)
    o.writeframes(b"\0" * int(0.6 * rate) * 2 * ch + frames + b"\0" * int(tail * rate) * 2 * ch)
    o.close()


def find(names, what):
    for n in names:
        p = shutil.which(n)
        if p:
            return p
    raise SystemExit(f"page check: FAILED: {what} not found ({', '.join(names)}); scripts/setup.sh --tests installs it")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bundle")
    ap.add_argument("--bin", default=os.path.join(S.ROOT, ".build", "debug"), help="lfm-run (and the bundle tools)")
    ap.add_argument("--lfm-run", help="the lfm-run to serve with (default: BIN/lfm-run)")
    ap.add_argument("--wav", default=S.SPEECH_WAV)
    ap.add_argument("--out", help="screenshot path (default: page.png in a new temp folder)")
    ap.add_argument("--timeout", type=float, default=120)
    ap.add_argument("--tail", type=float, default=8, help="seconds of silence after the question")
    a = ap.parse_args()
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
        from selenium.webdriver.common.by import By
    except ImportError:
        raise SystemExit("page check: FAILED: selenium is missing (pip install selenium)")
    chromium = find(["chromium", "chromium-browser", "google-chrome"], "Chromium")
    driver = find(["chromedriver"], "chromedriver (Debian chromium-driver)")
    tmp = tempfile.mkdtemp(prefix="lfm-page.")
    out = a.out or os.path.join(tmp, "page.png")
    bundle = a.bundle or S.build_bundle(a.bin, tmp)
    srv = S.Server(a.lfm_run or S.tool(a.bin, "lfm-run"), bundle)
    mic = os.path.join(tmp, "mic.wav")
    question_wav(a.wav, mic, a.tail)
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for f in [
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        "--use-file-for-fake-audio-capture=" + mic,
        "--autoplay-policy=no-user-gesture-required",
        "--window-size=900,700",
    ]:
        opts.add_argument(f)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # the system's driver, named: Selenium Manager would otherwise try the network
    os.environ.setdefault("SE_AVOID_STATS", "true")
    d = webdriver.Chrome(options=opts, service=Service(executable_path=driver))
    ok = False
    users, assistants, ttfa, deltas, audio_bytes = [], [], "", 0, 0
    try:
        d.get(f"{srv.url}/")
        d.execute_script(COUNT_AUDIO)
        d.find_element(By.ID, "start").click()
        t0 = time.time()
        while time.time() - t0 < a.timeout:
            users = [e.text for e in d.find_elements(By.CSS_SELECTOR, "#log .user")]
            assistants = [e.text for e in d.find_elements(By.CSS_SELECTOR, "#log .assistant")]
            ttfa = d.find_element(By.ID, "ttfa").text
            deltas, audio_bytes = d.execute_script("return [window.__deltas, window.__audioBytes]")
            heard = any(u.startswith("you: ") and u != "you: (speaking…)" for u in users)
            answered = any(len(x) > len("assistant: ") for x in assistants)
            if heard and answered and "first audio" in ttfa and deltas > 0:
                ok = True
                break
            time.sleep(0.5)
        d.save_screenshot(out)
        played = d.execute_script("return typeof playTime === 'undefined' ? -1 : playTime")
        print(f"user: {[u[:80] for u in users[:2]]}\nassistant: {[x[:80] for x in assistants[:2]]}\n{ttfa}")
        print(f"audio received: {deltas} deltas, {audio_bytes / 48000:.2f} s; playback scheduled to {played:.2f} s")
        print(f"screenshot: {out}")
        for l in d.get_log("browser")[:10]:
            if "favicon" not in l.get("message", ""):
                print("console:", l.get("message"))
    finally:
        d.quit()
        rc = srv.stop()
    if rc != 0:
        print(f"serve exited {rc} on SIGTERM")
        ok = False
    print("page check:", "ok" if ok else "FAILED")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
