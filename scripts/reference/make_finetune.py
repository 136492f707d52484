"""Fine-tuned checkpoints written the way liquid-audio's trainer writes them (liquid_audio/trainer.py, `Trainer`):
`LFM2AudioModel.from_pretrained(base, dtype=torch.bfloat16)`, an `Accelerator` with the trainer's
`ProjectConfiguration(automatic_checkpoint_naming=True)`, then

  - `accelerator.save_state()`  -> checkpoints/checkpoint_0/ (model.safetensors beside optimizer.bin, scheduler.bin,
    random_states_0.pkl), after deterministic change 1 to the weights (standing in for training);
  - `accelerator.save_model(model, final, max_shard_size=..., safe_serialization=True)` -> final/, after change 2
    (a small shard size so the fixture also has shards + index).

accelerate removes tensors that share storage when it writes safetensors, so both lack the tied members
(`depth_embeddings.{k}.to_logits.weight`, and `audio_embedding.to_logits.weight`: this base sets
`tie_audio_embeddings`). The base ("tiny-ft") is smaller than tiny-a and uses a non-default interleaved rhythm
(`interleaved_n_text` 3, `interleaved_n_audio` 5); it borrows tiny-a's tokenizer, Mimi and detokenizer files, so only
its config.json is committed. Base weights are random (seeded) and not committed.

    /tmp/refenv/bin/python scripts/reference/make_finetune.py            # --out Tests/Fixtures/finetune

Then the goldens: dump.py on each fine-tune + base pair (--base), four modes each, --lean.
"""

from __future__ import annotations

import argparse
import copy
import json
import shutil
import subprocess
import sys
from collections import OrderedDict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import fixtures as fx  # noqa: E402
import make_tiny  # noqa: E402  (sets up the numerics)

import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
TINY_A = ROOT / "Tests/Fixtures/tiny-a/model"
BORROWED = [
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
    "tokenizer-e351c8d8-checkpoint125.safetensors",
    "mimi_config.json",
    "audio_detokenizer",
]
SEED = 4242


def tiny_ft_config() -> dict:
    cfg = fx.get_config("tiny-a")
    cj = cfg["config_json"]
    cj["tie_audio_embeddings"] = True
    cj["interleaved_n_text"] = 3
    cj["interleaved_n_audio"] = 5
    cj["encoder"] = fx.encoder_config(n_layers=1, d_model=32, n_heads=2, sub_channels=16, ff_expansion=2, kernel=5)
    cj["lfm"] = fx._lfm_modern(
        vocab=512, hidden=32, layer_types=["conv", "full_attention"], heads=4, kv_heads=2, ff=128, multiple_of=32
    )
    cj["depthformer"] = OrderedDict(layers=1, dim=64, tie=True)
    cfg["name"] = "tiny-ft"
    return cfg


@torch.no_grad()
def change_(model, seed: int, scale: float) -> int:
    """Deterministic stand-in for training: every floating parameter += scale·std·N(0,1) (bf16)."""
    g = torch.Generator().manual_seed(seed)
    n = 0
    for _, p in model.named_parameters():  # tied Parameters are yielded once
        if not p.is_floating_point():
            continue
        noise = torch.randn(p.shape, generator=g, dtype=torch.float32)
        std = float(p.float().std()) if p.numel() > 1 else float(p.float().abs().mean())
        p.add_((noise * scale * max(std, 1e-3)).to(p.dtype))
        n += 1
    return n


TTS_SYSTEM, TTS_PROMPT = "Perform TTS. Use the US female voice.", "Speak now."
AUDIO_START = 128


@torch.no_grad()
def greedy_tts(model, proc, steps: int = 16) -> list[int]:
    """The TTS stream exactly as dump.py --mode tts runs it (float32 copy of the model), text tokens only."""
    from liquid_audio import ChatState

    m = copy.deepcopy(model).float().eval()
    chat = ChatState(proc, dtype=torch.float32)
    chat.new_turn("system")
    chat.add_text(TTS_SYSTEM)
    chat.end_turn()
    chat.new_turn("user")
    chat.add_text(TTS_PROMPT)
    chat.end_turn()
    chat.new_turn("assistant")
    prompt = [int(v) for v in chat["text"][0]]
    out = []
    for y in m.generate_sequential(**chat, max_new_tokens=steps):
        y = y.reshape(-1)
        if y.numel() != 1:
            break
        out.append(int(y[0]))
        if out[-1] == AUDIO_START:
            break
    return prompt, out


@torch.no_grad()
def steer_tts_(model, proc) -> dict:
    """Part of the deterministic change: swap rows t <-> <|audio_start|> of the tied `lfm.embed_tokens`, with t the
    first TTS token at a step >= 2 that appears neither in the prompt nor earlier, so that the TTS stream speaks."""
    prompt, toks = greedy_tts(model, proc)
    for i, t in enumerate(toks):
        if i >= 2 and t != AUDIO_START and t not in prompt and t not in toks[:i] and AUDIO_START not in toks[:i]:
            w = model.lfm.embed_tokens.weight
            tmp = w[t].clone()
            w[t] = w[AUDIO_START]
            w[AUDIO_START] = tmp
            _, after = greedy_tts(model, proc)
            assert after[i] == AUDIO_START, (toks, after)
            return dict(swapped=[t, AUDIO_START], step=i, before=toks, after=after)
    raise SystemExit(f"no token to steer in {toks}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=ROOT / "Tests/Fixtures/finetune")
    ap.add_argument("--work", type=Path, default=Path("/tmp/wt15-finetune-work"))
    ap.add_argument("--no-dumps", action="store_true")
    a = ap.parse_args()
    from accelerate import Accelerator
    from accelerate.utils import ProjectConfiguration
    from liquid_audio import LFM2AudioModel, LFM2AudioProcessor

    shutil.rmtree(a.work, ignore_errors=True)
    base = a.work / "base"
    base.mkdir(parents=True)
    cfg = tiny_ft_config()
    fx.write_json(base / "config.json", cfg["config_json"])
    for n in BORROWED:
        (shutil.copytree if (TINY_A / n).is_dir() else shutil.copy)(TINY_A / n, base / n)
    model, _ = make_tiny.build_random_model(cfg, SEED)
    from safetensors.torch import save_file

    save_file(
        fx.state_dict_for_saving(model, torch.bfloat16), str(base / "model.safetensors"), metadata={"format": "pt"}
    )
    del model

    # --- the trainer's path
    run = a.work / "run"
    acc = Accelerator(
        project_config=ProjectConfiguration(project_dir=str(run), automatic_checkpoint_naming=True, total_limit=30)
    )
    m = LFM2AudioModel.from_pretrained(base, device="cpu", dtype=torch.bfloat16)
    opt = torch.optim.AdamW(m.parameters(), lr=1e-4, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1)
    sched = torch.optim.lr_scheduler.LinearLR(optimizer=opt, start_factor=1e-8, end_factor=1.0, total_iters=10)
    m, opt, sched = acc.prepare(m, opt, sched)
    proc = LFM2AudioProcessor.from_pretrained(base, device="cpu").eval()
    n1 = change_(acc.unwrap_model(m), SEED + 1, 0.5)
    steer1 = steer_tts_(acc.unwrap_model(m), proc)
    acc.save_state()  # checkpoints/checkpoint_0
    n2 = change_(acc.unwrap_model(m), SEED + 2, 0.5)
    steer2 = steer_tts_(acc.unwrap_model(m), proc)
    acc.save_model(acc.unwrap_model(m), f"{run}/final", max_shard_size="2MB", safe_serialization=True)

    out = a.out
    shutil.rmtree(out, ignore_errors=True)
    (out / "base").mkdir(parents=True)
    shutil.copy(base / "config.json", out / "base" / "config.json")
    shutil.copytree(run / "final", out / "final")
    shutil.copytree(run / "checkpoints", out / "checkpoints")
    written = {str(p.relative_to(out)): p.stat().st_size for p in sorted(out.rglob("*")) if p.is_file()}
    print(json.dumps(written, indent=1))

    # --- goldens: the reference on each fine-tune + base pair
    dumps = []
    if not a.no_dumps:
        wav = ROOT / "Tests/Fixtures/audio/speech.wav"
        for name, folder in [
            ("final", out / "final"),
            ("checkpoint_0", out / "checkpoints/checkpoint_0"),
            ("base", base),
        ]:
            for mode, extra in [
                ("text", ["--prompt", "Hello there."]),
                ("asr", ["--audio", str(wav)]),
                ("tts", ["--prompt", "Speak now.", "--voice", "us-female"]),
                ("chat", ["--audio", str(wav)]),
            ]:
                dest = (out / "goldens" if name != "base" else a.work / "goldens") / f"{mode}-{name}.safetensors"
                cmd = [
                    sys.executable,
                    str(ROOT / "scripts/reference/dump.py"),
                    str(folder),
                    "--base",
                    str(base),
                    "--mode",
                    mode,
                    *extra,
                    "--steps",
                    "16",
                    "--depth-frames",
                    "1",
                    "--lean",
                    "--out",
                    str(dest),
                ]
                subprocess.run(cmd, check=True)
                dumps.append(str(dest))
        # the fine-tunes' streams differ from the base's
        for mode in ["text", "asr", "tts", "chat"]:
            b = json.loads((a.work / "goldens" / f"{mode}-base.json").read_text())["stream"]
            for name in ["final", "checkpoint_0"]:
                f = json.loads((out / "goldens" / f"{mode}-{name}.json").read_text())["stream"]
                print(f"{mode} {name}: differs from base: {f != b}")
        for j in (out / "goldens").glob("*.json"):
            j.write_text(
                j.read_text()
                .replace(str(base), "Tests/Fixtures/finetune/base (+ tiny-a's tokenizer, Mimi, detokenizer)")
                .replace(str(out) + "/", "Tests/Fixtures/finetune/")
                .replace(str(ROOT) + "/", "")
            )
    manifest = OrderedDict(
        generator="scripts/reference/make_finetune.py",
        versions=fx.versions(),
        seed=SEED,
        changed_parameters=[n1, n2],
        tts_steering=dict(checkpoint_0=steer1, final=steer2),
        files=written,
        base="Tests/Fixtures/finetune/base/config.json + " + ", ".join(f"tiny-a/model/{n}" for n in BORROWED),
    )
    fx.write_json(out / "manifest.json", manifest)


if __name__ == "__main__":
    main()
