"""Independent check of fixture folders written by make_tiny.py, through the reference's public loaders.

    /tmp/refenv/bin/python scripts/reference/check_fixtures.py Tests/Fixtures/tiny-a Tests/Fixtures/tiny-b

For each folder:
1. every file listed in manifest.json exists with the recorded size and sha256, and no unlisted file exists;
2. LFM2AudioModel.from_pretrained(Path(model), dtype=float32, device="cpu") loads model.safetensors; the file's key
   set equals the model's state_dict key set (strict), load_state_dict(strict=True) succeeds, values are exact;
3. LFM2AudioProcessor.from_pretrained(Path(model), device="cpu") loads the tokenizer and the preprocessor; `.mimi`
   loads the Mimi file with load_state_dict(strict=True) (get_mimi kwargs taken from mimi_config.json);
4. the tokenizer loaded by transformers encodes exactly like the raw `tokenizers` file, special ids are as fixed;
5. the detokenizer is built as the processor builds it and loads the recipe weights with strict=True; the recipe's
   vectorised implementation agrees with a scalar pure-Python transcription of the recipe text for sample elements;
   sha256 of every recipe tensor matches weights_recipe.json;
6. prompt, mel, prefill, last hidden state, Mimi decode and detokenizer outputs are recomputed and compared with
   golden.safetensors (bit-exact expected in the same environment).
"""

from __future__ import annotations

import hashlib
import json
import sys
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import fixtures as fx  # noqa: E402

fx.setup_numerics()

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

MIMI_NAME = "tokenizer-e351c8d8-checkpoint125.safetensors"


def scalar_recipe_value(name: str, i: int, offset: float, scale: float) -> float:
    """Literal transcription of the recipe text with Python integers (mask to 32 bits after each step)."""
    h = 0x811C9DC5
    for b in name.encode("utf-8"):
        h = ((h ^ b) * 0x01000193) & 0xFFFFFFFF
    m = 0xFFFFFFFF
    x = ((i * 0x9E3779B9) & m) ^ h
    x ^= x >> 16
    x = (x * 0x7FEB352D) & m
    x ^= x >> 15
    x = (x * 0x846CA68B) & m
    x ^= x >> 16
    u = ((x >> 16) - 32768) / 32768.0
    return offset + scale * u  # exact in float64 and in float32


def check(folder: Path) -> list[str]:
    from transformers import AutoTokenizer
    from tokenizers import Tokenizer

    from liquid_audio import LFM2AudioModel, LFM2AudioProcessor

    errors: list[str] = []

    def expect(cond: bool, what: str) -> None:
        print(f"  [{'ok' if cond else 'FAIL'}] {what}")
        if not cond:
            errors.append(f"{folder}: {what}")

    print(f"== {folder}")
    manifest = json.loads((folder / "manifest.json").read_text())
    model_dir = folder / "model"

    # 1. files
    listed = {f["path"]: f for f in manifest["files"]}
    present = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()} - {"manifest.json"}
    expect(set(listed) == present, f"file set matches manifest ({len(listed)} files)")
    for p, f in listed.items():
        q = folder / p
        expect(q.exists() and q.stat().st_size == f["bytes"] and fx.sha256_file(q) == f["sha256"], f"sha256/bytes {p}")

    # 2. model through the public loader
    model = LFM2AudioModel.from_pretrained(model_dir, dtype=torch.float32, device="cpu").eval()
    file_sd = load_file(str(model_dir / "model.safetensors"))
    msd = model.state_dict()
    expect(sorted(file_sd) == sorted(msd), f"model.safetensors keys == state_dict keys ({len(msd)})")
    expect(all(torch.equal(msd[k], v.to(msd[k].dtype)) for k, v in file_sd.items()), "loaded values exact")
    res = model.load_state_dict({k: v.to(msd[k].dtype) for k, v in file_sd.items()}, strict=True)
    expect(not res.missing_keys and not res.unexpected_keys, "load_state_dict(strict=True)")
    expect(all(v.dtype == torch.bfloat16 for v in file_sd.values() if v.is_floating_point()), "file floats are bf16")
    expect(model.lfm.config._attn_implementation == "sdpa", "LFM2 attention implementation is sdpa")

    # 3. processor + Mimi
    fx.set_mimi_kwargs(json.loads((model_dir / "mimi_config.json").read_text()))
    proc = LFM2AudioProcessor.from_pretrained(model_dir, device="cpu").eval()
    mimi = proc.mimi  # get_mimi(None) + load_state_dict(file, strict=True)
    mimi_file = load_file(str(model_dir / MIMI_NAME))
    expect(len(mimi_file) == len(mimi.state_dict()), f"Mimi file has the full state dict ({len(mimi_file)} tensors)")
    expect(
        any("in_proj_weight" in k for k in mimi_file),
        "Mimi file uses the released attention names " "(self_attn.in_proj_weight / out_proj.weight)",
    )
    n_q = json.loads((model_dir / "mimi_config.json").read_text())["quantizer"]["n_q"]
    expect(mimi.quantizer.total_codebooks == n_q and mimi.num_codebooks == 8, f"Mimi holds {n_q} codebooks, 8 active")

    # 4. tokenizer
    raw = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    hf = AutoTokenizer.from_pretrained(str(model_dir))
    samples = [
        "<|startoftext|>",
        "<|im_start|>system\n",
        fx.SYSTEM_PROMPT,
        "<|im_end|>\n",
        "<|im_start|>user\n",
        "<|im_start|>assistant\n",
        "Hello world!  It's 12345 o'clock.\n\nNew   line\ttab",
        "Perform TTS. Use the UK female voice.",
        "naïve café — 日本語 🙂",
        "<|audio_start|><|text_end|>x",
    ]
    same = all(hf.encode(s, add_special_tokens=False) == raw.encode(s, add_special_tokens=False).ids for s in samples)
    expect(same, "transformers tokenizer == raw tokenizers encodings")
    roundtrip = all(hf.decode(hf.encode(s, add_special_tokens=False)) == s for s in samples)
    expect(roundtrip, "decode(encode(s)) == s")
    ids = {
        s: raw.token_to_id(s)
        for s in ("<|pad|>", "<|startoftext|>", "<|im_start|>", "<|im_end|>", "<|audio_start|>", "<|text_end|>")
    }
    expect(
        ids
        == {
            "<|pad|>": 0,
            "<|startoftext|>": 1,
            "<|im_start|>": 6,
            "<|im_end|>": 7,
            "<|audio_start|>": 128,
            "<|text_end|>": 130,
        },
        f"special ids {ids}",
    )

    # 5. detokenizer
    recipe = json.loads((model_dir / "audio_detokenizer" / "weights_recipe.json").read_text())
    detok = fx.build_detokenizer(model_dir / "audio_detokenizer" / "config.json")
    _, sd = fx.detok_recipe(detok)
    res = detok.load_state_dict(sd, strict=True)
    expect(
        not res.missing_keys and not res.unexpected_keys,
        f"detokenizer load_state_dict(strict=True) " f"({len(sd)} tensors)",
    )
    ok_sha, ok_scalar = True, True
    for t in recipe["tensors"]:
        w = sd[t["name"]]
        ok_sha &= hashlib.sha256(w.numpy().astype("<f4").tobytes()).hexdigest() == t["sha256_f32le"]
        ok_sha &= list(w.shape) == t["shape"]
        if t["kind"] == "hash":
            flat = w.reshape(-1)
            for i in sorted({0, 1, 2, flat.numel() // 2, flat.numel() - 1}):
                ok_scalar &= float(flat[i]) == scalar_recipe_value(t["name"], i, t["offset"], t["scale"])
        else:
            ok_scalar &= torch.equal(w, torch.hann_window(1280))
    expect(ok_sha, "recipe tensors match the recorded sha256 and shapes")
    expect(ok_scalar, "vectorised recipe == scalar transcription of the recipe text")
    detok_file = model_dir / "audio_detokenizer" / "model.safetensors"
    if detok_file.exists():
        dsd = load_file(str(detok_file))
        expect(
            sorted(dsd) == sorted(sd) and all(torch.equal(dsd[k], sd[k]) for k in sd),
            "audio_detokenizer/model.safetensors == recipe",
        )

    # 6. recompute goldens
    G = load_file(str(folder / "golden.safetensors"))
    wave = fx.input_wave_16k()
    expect(torch.equal(wave, G["input.wave_16k"]), "input.wave_16k")
    chat = fx.build_chat(proc, wave)
    expect(torch.equal(chat["text"].to(torch.int32), G["c.text_ids"]), "c.text_ids (tokenizer + ChatState)")
    expect(torch.equal(chat["modality_flag"].to(torch.int32), G["c.modality_flag"]), "c.modality_flag")
    expect(torch.equal(chat["audio_in"], G["a.mel"]), "a.mel")
    with torch.no_grad():
        in_emb = model._prefill(**chat)
        expect(torch.equal(in_emb, G["c.in_emb"]), "c.in_emb")
        last = model.lfm(inputs_embeds=in_emb, use_cache=False).last_hidden_state
        expect(torch.equal(last, G["c.last_hidden"]), "c.last_hidden")
        logits = F.linear(last[0, -1], model.lfm.embed_tokens.weight)
        expect(torch.equal(logits, G["c.text_logits_last"]), "c.text_logits_last")
        codes = G["e.codes"].long()
        expect(torch.equal(mimi.decode(codes), G["e.mimi_decode_wave"]), "e.mimi_decode_wave")
        expect(
            torch.equal(mimi.encode(G["e.mimi_encode_input"]).to(torch.int32), G["e.mimi_encode_codes"]),
            "e.mimi_encode_codes",
        )
        expect(torch.equal(detok(codes), G["e.detok_wave"]), "e.detok_wave")
        seq = [y.reshape(-1).tolist() for y in model.generate_sequential(**chat, max_new_tokens=manifest["steps"])]
        exp = [
            ([s["token"]] if s["modality"] == "text" else s["frame"])
            for s in manifest["streams"]["sequential"]
            if s.get("yielded", True)
        ]
        expect(seq == exp, "generate_sequential stream == manifest")
    expect(set(G) == set(manifest["goldens"]), f"golden names == manifest ({len(G)})")
    return errors


def main() -> None:
    warnings.filterwarnings("ignore")
    folders = [Path(a) for a in sys.argv[1:]] or [Path("Tests/Fixtures/tiny-a"), Path("Tests/Fixtures/tiny-b")]
    errors = []
    for f in folders:
        errors += check(f)
    if errors:
        print("FAILED:\n  " + "\n  ".join(errors))
        raise SystemExit(1)
    print("all checks passed")


if __name__ == "__main__":
    main()
