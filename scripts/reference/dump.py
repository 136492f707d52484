"""Per-stage reference dump for `lfm-run parity`: runs liquid-audio on YOUR checkpoint and inputs and writes every
intermediate the runtime can be compared against.

    /tmp/refenv/bin/python scripts/reference/dump.py CHECKPOINT --mode chat --audio question.wav --out dump.safetensors
    /tmp/refenv/bin/python scripts/reference/dump.py CHECKPOINT --mode text --prompt "Hello!" --out dump.safetensors
    /tmp/refenv/bin/python scripts/reference/dump.py FINETUNE --base BASE --mode asr --audio q.wav --out \
dump.safetensors

A fine-tune saved by liquid-audio's trainer (`final/`, `checkpoints/checkpoint_N/`) holds only the weights: with
--base, the reference loads a folder made of BASE's files with the fine-tune's files over them (a file in both comes
from the fine-tune), which is what `lfm-convert FINETUNE --base BASE` converts. --lean leaves out audio.resampled,
audio.mel, lfm.hidden_states and decode.* (for small committed goldens; the streams and their logits stay).

Set-up: any Python with liquid-audio 1.3.0 + torch (scripts/reference/README.md). Runs in float32 on the
CPU with one thread and deterministic algorithms (or `--device cuda` when a GPU is present; TF32 is disabled), greedy
for text and audio. Modes (the runtime's commands):

    text  system (--system, none by default), user = [audio] + [prompt]; generate_sequential, stops at <|audio_start|>
    asr   system "Perform ASR.", user = audio; generate_sequential, stops at <|im_end|> / <|audio_start|>
    tts   system "Perform TTS. Use the <voice> voice.", user = prompt; generate_sequential (text, frames, text)
    chat  system "Respond with interleaved text and audio.", user = [audio] + [prompt]; generate_interleaved

Writes OUT (safetensors, float32/int32) and OUT with .json (manifest: versions, inputs, seed, shapes, stream). Tensors:

    input.wave [N] (the WAV as the runtime reads it: int PCM / 2^(bits-1), channels averaged), input.sample_rate [1]
    audio.resampled [N16]  audio.mel [128, T]  audio.conformer_out [T', d]  audio.adapter_out [T', H]
    prompt.text_ids [n]  prompt.modality_flag [L]  prompt.in_emb [L, H]
    lfm.hidden_states [layers + 1, L, H] (entry 0 = in_emb; last = after the final norm)
    gen.step_modality [S] (1 text, 3 audio)  gen.text_tokens [n_text]  gen.text_logits [n_text, V]
    gen.text_margins [n_text]  gen.audio_frames [n_frames, 8]  gen.depth_logits [min(n_frames, --depth-frames), 8, 2049]
    gen.depth_margins [.., 8]  decode.codes [8, T] (frames without end-of-audio)  decode.mimi_wave [1920 T]
    decode.detok_wave [1920 T] (when the checkpoint has audio_detokenizer/model.safetensors)

The fixture generator (make_tiny.py) and this script share fixtures.py (numerics set-up, chat assembly, margins).
"""

from __future__ import annotations

import argparse
import json
import sys
import wave as wavmod
from collections import OrderedDict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import fixtures as fx  # noqa: E402

import numpy as np  # noqa: E402

SYSTEMS = {"asr": "Perform ASR.", "chat": "Respond with interleaved text and audio."}
VOICES = {"us-male": "US male", "us-female": "US female", "uk-male": "UK male", "uk-female": "UK female"}
IM_END, AUDIO_START = 7, 128


def read_wav_pcm(path: str) -> tuple[np.ndarray, int]:
    with wavmod.open(path, "rb") as w:
        ch, width, rate, n = w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes()
        raw = w.readframes(n)
    if width == 1:
        x = (np.frombuffer(raw, np.uint8).astype(np.float64) - 128) / 128
    elif width == 2:
        x = np.frombuffer(raw, "<i2").astype(np.float64) / 32768
    elif width == 3:
        b = np.frombuffer(raw, np.uint8).reshape(-1, 3).astype(np.int32)
        v = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        v = np.where(v >= 1 << 23, v - (1 << 24), v)
        x = v.astype(np.float64) / (1 << 23)
    elif width == 4:
        x = np.frombuffer(raw, "<i4").astype(np.float64) / (1 << 31)
    else:
        raise SystemExit(f"{path}: {8 * width}-bit PCM is not supported here")
    x = x.reshape(-1, ch).mean(axis=1)
    return x.astype(np.float32), rate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint", type=Path)
    ap.add_argument("--mode", choices=["text", "asr", "tts", "chat"], required=True)
    ap.add_argument("--prompt")
    ap.add_argument("--audio", help="a PCM WAV file (8/16/24/32-bit)")
    ap.add_argument("--system", help="system prompt (default: the mode's)")
    ap.add_argument("--voice", default="uk-female", choices=sorted(VOICES))
    ap.add_argument("--steps", type=int, default=32, help="max_new_tokens")
    ap.add_argument("--depth-frames", type=int, default=4, help="frames whose depthformer logits are kept")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument(
        "--base", type=Path, help="the model a fine-tune folder was trained from (supplies the files it lacks)"
    )
    ap.add_argument("--lean", action="store_true", help="leave out the large intermediate tensors")
    a = ap.parse_args()
    finetune = a.checkpoint
    if a.base is not None:
        import tempfile

        merged = Path(tempfile.mkdtemp(prefix="dump-finetune-"))
        for src in (a.base, a.checkpoint):  # the fine-tune's files win
            for p in src.iterdir():
                dst = merged / p.name
                if dst.is_symlink() or dst.exists():
                    dst.unlink()
                dst.symlink_to(p.resolve())
        if not (a.checkpoint / "model.safetensors.index.json").exists():
            (merged / "model.safetensors.index.json").unlink(missing_ok=True)
        if not (a.checkpoint / "model.safetensors").exists():
            (merged / "model.safetensors").unlink(missing_ok=True)
        a.checkpoint = merged

    fx.setup_numerics()
    import torch
    import torch.nn.functional as F
    import torchaudio
    from safetensors.torch import save_file

    from liquid_audio import ChatState, LFM2AudioModel, LFM2AudioProcessor

    torch.manual_seed(a.seed)
    if a.device != "cpu":
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    if a.mode in ("asr",) and not a.audio:
        raise SystemExit("--mode asr needs --audio")
    if a.mode == "tts" and not a.prompt:
        raise SystemExit("--mode tts needs --prompt (the text to speak)")
    if a.mode in ("text", "chat") and not (a.audio or a.prompt):
        raise SystemExit(f"--mode {a.mode} needs --audio and/or --prompt")
    system = (
        a.system
        if a.system is not None
        else (f"Perform TTS. Use the {VOICES[a.voice]} voice." if a.mode == "tts" else SYSTEMS.get(a.mode))
    )

    proc = LFM2AudioProcessor.from_pretrained(a.checkpoint, device=a.device).eval()
    model = LFM2AudioModel.from_pretrained(a.checkpoint, dtype=torch.float32, device=a.device).eval()
    T: dict[str, torch.Tensor] = OrderedDict()

    def put(name, t):
        t = torch.as_tensor(t).detach().cpu()
        T[name] = (t.to(torch.float32) if t.is_floating_point() else t.to(torch.int32)).contiguous().clone()

    wave = None
    with torch.no_grad():
        chat = ChatState(proc, dtype=torch.float32)
        if system:
            chat.new_turn("system")
            chat.add_text(system)
            chat.end_turn()
        chat.new_turn("user")
        if a.audio and a.mode != "tts":
            x, rate = read_wav_pcm(a.audio)
            wave = torch.from_numpy(x)[None, :]
            put("input.wave", wave[0])
            put("input.sample_rate", torch.tensor([rate]))
            chat.add_audio(wave.to(a.device), rate)
            put("audio.resampled", torchaudio.functional.resample(wave, rate, 16000)[0] if rate != 16000 else wave[0])
        if a.prompt and a.mode != "asr":
            chat.add_text(a.prompt)
        chat.end_turn()
        chat.new_turn("assistant")

        if wave is not None:
            put("audio.mel", chat["audio_in"])
            enc, enc_len, _ = fx.run_conformer(model, chat)
            put("audio.conformer_out", enc[0].mT[: int(enc_len[0])])
            put("audio.adapter_out", model.audio_adapter(enc[0].mT[: int(enc_len[0])]))
        put("prompt.text_ids", chat["text"][0])
        put("prompt.modality_flag", chat["modality_flag"][0])
        in_emb = model._prefill(**chat)
        put("prompt.in_emb", in_emb[0])
        out = model.lfm(inputs_embeds=in_emb, use_cache=False, output_hidden_states=True)
        put("lfm.hidden_states", torch.stack([h[0] for h in out.hidden_states]))

        # generation, greedy, recording every decision's logits
        text_logits, depth_logits, cur = [], [], []
        orig_text = model._sample_text_token

        def text_wrap(logits, **kw):
            text_logits.append(logits.detach().float().cpu().clone())
            return orig_text(logits, **kw)

        model._sample_text_token = text_wrap
        origs = []
        for k, de in enumerate(model.depth_embeddings):
            origs.append(de.get_logits)

            def gl(e, _o=de.get_logits, _k=k):
                o = _o(e)
                cur.append(o.detach().float().cpu().reshape(-1).clone())
                if len(cur) == 8:
                    depth_logits.append(torch.stack(cur))
                    cur.clear()
                return o

            de.get_logits = gl
        fn = model.generate_interleaved if a.mode == "chat" else model.generate_sequential
        steps, text_tokens, frames = [], [], []
        for y in fn(**chat, max_new_tokens=a.steps):
            y = y.reshape(-1).cpu()
            if y.numel() == 1:
                steps.append(1)
                text_tokens.append(int(y[0]))
                if a.mode in ("text", "asr") and text_tokens[-1] == AUDIO_START:
                    break
            else:
                steps.append(3)
                frames.append([int(v) for v in y])
        del model._sample_text_token
        for de in model.depth_embeddings:
            del de.get_logits
        if a.mode == "chat" and len(text_logits) > len(text_tokens):  # the unyielded <|im_end|>
            text_logits = text_logits[: len(text_tokens)]
        assert len(text_logits) == len(text_tokens), (len(text_logits), len(text_tokens))
        put("gen.step_modality", torch.tensor(steps))
        put("gen.text_tokens", torch.tensor(text_tokens, dtype=torch.int64))
        if text_logits:
            put("gen.text_logits", torch.stack(text_logits))
            put("gen.text_margins", torch.tensor([fx.top2_margin(l) for l in text_logits]))
        if frames:
            put("gen.audio_frames", torch.tensor(frames))
            dl = torch.stack(depth_logits[: a.depth_frames])
            put("gen.depth_logits", dl)
            put("gen.depth_margins", torch.tensor([[fx.top2_margin(l) for l in f] for f in dl]))
        valid = [f for f in frames if 2048 not in f]
        if valid:
            codes = torch.tensor(valid).T.contiguous()
            put("decode.codes", codes)
            mc = (
                a.checkpoint / "mimi_config.json"
            )  # the fixtures' small Mimi; released checkpoints use get_mimi's defaults
            if mc.exists():
                fx.set_mimi_kwargs(json.loads(mc.read_text()))
            mimi = proc.mimi
            put("decode.mimi_wave", mimi.decode(codes[None].to(a.device))[0, 0])
            detok_w = a.checkpoint / "audio_detokenizer" / "model.safetensors"
            if detok_w.exists():
                from safetensors.torch import load_file

                detok = fx.build_detokenizer(a.checkpoint / "audio_detokenizer" / "config.json")
                detok.load_state_dict(load_file(str(detok_w)), strict=True)
                put("decode.detok_wave", detok(codes[None])[0])

    if a.lean:
        for k in [
            k for k in T if k in ("audio.resampled", "audio.mel", "lfm.hidden_states") or k.startswith("decode.")
        ]:
            del T[k]
    a.out.parent.mkdir(parents=True, exist_ok=True)
    save_file(T, str(a.out), metadata={"format": "pt", "generator": "scripts/reference/dump.py"})
    manifest = OrderedDict(
        generator="scripts/reference/dump.py",
        command=" ".join(sys.argv),
        versions=fx.versions(),
        numerics=OrderedDict(dtype="float32", device=a.device, threads=1, decoding="greedy (text and every codebook)"),
        checkpoint=str(finetune),
        base=str(a.base) if a.base else None,
        mode=a.mode,
        system=system,
        prompt=a.prompt,
        audio=OrderedDict(
            file=a.audio, sample_rate=int(T["input.sample_rate"][0]) if "input.sample_rate" in T else None
        ),
        max_new_tokens=a.steps,
        seed=a.seed,
        stream=OrderedDict(text_tokens=text_tokens, frames=frames, step_modality=steps),
        shapes=OrderedDict((k, list(v.shape)) for k, v in T.items()),
    )
    a.out.with_suffix(".json").write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n")
    print(
        f"wrote {a.out} ({a.out.stat().st_size} bytes, {len(T)} tensors): {len(text_tokens)} text tokens, "
        f"{len(frames)} frames"
    )


if __name__ == "__main__":
    main()
