"""Build a FULL-SIZE random-weight LFM2-Audio checkpoint folder with the released shapes (local smoke, memory,
load-time and shape tests only; never commit the output).

    /tmp/refenv/bin/python scripts/reference/make_fullsize.py --out /tmp/fullsize [--check]

Writes, in the hub layout of the released checkpoints:
- config.json (reconstructed LFM2-Audio-1.5B config), model.safetensors (bf16, 931 tensors, ~2.94 GB);
- tokenizer.json (byte-level BPE with the LFM2 structure, trained on a synthetic corpus to exactly 65536 ids),
  tokenizer_config.json, special_tokens_map.json, chat_template.jinja;
- tokenizer-e351c8d8-checkpoint125.safetensors: full-size Mimi (real get_mimi sizes, fp32, 318 tensors, ~385 MB);
- audio_detokenizer/config.json (LFM2.5-Audio detokenizer config) and audio_detokenizer/model.safetensors (bf16);
- manifest.json (sizes, tensor counts, sha256; no timings, so the folder is reproducible bit for bit).
--check then reloads everything through the reference's public loaders and runs a short bf16 smoke test.
Needs about 9 GB of RAM at the peak (safetensors serialisation) and 4 GB of disk.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import resource
import shutil
import sys
import time
import warnings
from collections import OrderedDict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import fixtures as fx  # noqa: E402

fx.setup_numerics()

import torch  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402

MIMI_NAME = "tokenizer-e351c8d8-checkpoint125.safetensors"
T0 = time.perf_counter()
TIMES: dict[str, float] = OrderedDict()


def log(msg: str) -> None:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    print(f"[make_fullsize {time.perf_counter() - T0:7.1f}s, peak RSS {rss:5.2f} GB] {msg}", flush=True)


class Timer:
    def __init__(self, name):
        self.name = name

    def __enter__(self):
        self.t = time.perf_counter()

    def __exit__(self, *a):
        TIMES[self.name] = time.perf_counter() - self.t
        log(f"{self.name}: {TIMES[self.name]:.1f} s")


ATTN_IDXS = (2, 5, 8, 10, 12, 14)


def fullsize_config() -> dict:
    layer_types = ["full_attention" if i in ATTN_IDXS else "conv" for i in range(16)]
    lfm = fx._lfm_modern(
        vocab=65536, hidden=2048, layer_types=layer_types, heads=32, kv_heads=8, ff=12288, multiple_of=256
    )
    lfm["architectures"] = ["Lfm2ForCausalLM"]
    lfm.move_to_end("architectures", last=False)
    return OrderedDict(
        architectures=["Lfm2AudioForConditionalGeneration"],
        codebooks=8,
        tie_audio_embeddings=False,
        semantic_codebook_factor=100,
        codebook_weight="log",
        text_loss_multiplier=1.0,
        audio_loss_multiplier=1.0,
        interleaved_n_text=6,
        interleaved_n_audio=12,
        preprocessor=fx.PREPROCESSOR,
        encoder=fx.encoder_config(n_layers=17, d_model=512, n_heads=8, sub_channels=256, ff_expansion=4, kernel=9),
        lfm=lfm,
        depthformer=OrderedDict(layers=6, dim=1024, tie=True),
    )


def detok_config() -> dict:
    """The released LFM2.5-Audio detokenizer config (third-party verbatim copy of the LFM2.5 file)."""
    return OrderedDict(
        architectures=["Lfm25AudioTokenizer"],
        model_type="lfm2",
        vocab_size=65536,
        hidden_size=512,
        block_dim=512,
        block_ff_dim=3328,
        block_auto_adjust_ff_dim=True,
        block_multiple_of=256,
        block_ffn_dim_multiplier=1.0,
        num_hidden_layers=8,
        layer_types=[
            "conv",
            "conv",
            "sliding_attention",
            "conv",
            "sliding_attention",
            "conv",
            "sliding_attention",
            "conv",
        ],
        num_attention_heads=16,
        num_key_value_heads=8,
        sliding_window=30,
        output_size=1282,
        conv_bias=False,
        conv_L_cache=3,
        norm_eps=1e-05,
        rope_theta=1000000.0,
        max_position_embeddings=128000,
        tie_embedding=False,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=7,
    )


@torch.no_grad()
def init_fullsize_(model: torch.nn.Module, g: torch.Generator) -> dict:
    """README section 4: >=2-D N(0, 1/fan_in); 1-D tensors named like weights/norms 1 + 0.1 N(0,1); other 1-D (biases)
    and the conformer's pos_bias_u/v 0.05 N(0,1); buffers keep their computed values (codebook_offsets,
    audio_loss_weights, running_var 1, running_mean 0). Drawn in place in bf16."""
    counts = OrderedDict(normal_fan_in=0, one_plus=0, small=0)
    for name, p in model.named_parameters():
        if p.dim() >= 2 and not name.endswith(("pos_bias_u", "pos_bias_v")):
            p.normal_(0.0, 1.0 / math.sqrt(fx.fan_in(p)), generator=g)
            counts["normal_fan_in"] += 1
        elif name.endswith(("weight", "scale")):
            p.normal_(1.0, 0.1, generator=g)
            counts["one_plus"] += 1
        else:
            p.normal_(0.0, 0.05, generator=g)
            counts["small"] += 1
    return counts


def save_unshared(sd: dict[str, torch.Tensor], path: Path, dtype: torch.dtype | None = None) -> None:
    """save_file rejects tensors sharing storage: clone only the later duplicates (tied tables). Floating tensors
    are cast to `dtype` if given (a no-op without a copy for tensors that already have it)."""
    seen = set()
    out = {}
    for k, v in sd.items():
        v = v.detach()
        if dtype is not None and v.is_floating_point():
            v = v.to(dtype)
        key = (v.untyped_storage().data_ptr(), v.storage_offset(), tuple(v.shape))
        out[k] = v.clone() if key in seen else v.contiguous()
        seen.add(key)
    save_file(out, str(path), metadata={"format": "pt"})
    path.chmod(0o644)


def build(out: Path, seed: int) -> dict:
    from liquid_audio import LFM2AudioModel
    from liquid_audio.moshi.models import loaders

    if out.exists():
        shutil.rmtree(out)
    (out / "audio_detokenizer").mkdir(parents=True)
    config = fullsize_config()
    fx.write_json(out / "config.json", config)
    fx.write_json(out / "audio_detokenizer" / "config.json", detok_config())

    with Timer("tokenizer (BPE trained to 65536 ids)"):
        tok = fx.build_tokenizer("lfm2", 65536, extra_lines=fx.synthetic_corpus_lines(40000))
        fx.write_tokenizer_files(tok, out)

    # ---- LM checkpoint, built directly in bf16 ----
    from make_tiny import build_conf  # same config path as from_pretrained

    with Timer("build LFM2AudioModel in bf16 (default init)"):
        torch.set_default_dtype(torch.bfloat16)
        torch.manual_seed(seed)
        model = LFM2AudioModel(build_conf(config))
        torch.set_default_dtype(torch.float32)
    with Timer("random init (bf16, in place)"):
        init = init_fullsize_(model, torch.Generator().manual_seed(seed))
    sd = model.state_dict()
    n_keys = len(sd)
    with Timer("save model.safetensors"):
        # pos_bias_u/v are created as torch.FloatTensor (fp32 even under a bf16 default dtype): cast everything
        save_unshared(sd, out / "model.safetensors", torch.bfloat16)
    del sd, model
    gc.collect()

    # ---- Mimi: real get_mimi sizes, fp32 ----
    with Timer("build + save full-size Mimi (fp32)"):
        torch.manual_seed(seed + 1_000_003)
        mimi = loaders.get_mimi(None, device="cpu")
        mimi_init = fx.randomize_mimi_(mimi, torch.Generator().manual_seed(seed + 1_000_003))
        msd = fx.mimi_state_dict_kyutai_names(fx.state_dict_for_saving(mimi, torch.float32))
        save_unshared(msd, out / MIMI_NAME)
        del mimi, msd
        gc.collect()

    # ---- detokenizer: recipe weights stored in bf16 ----
    with Timer("build + save audio detokenizer (recipe, bf16)"):
        detok = fx.build_detokenizer(out / "audio_detokenizer" / "config.json")
        recipe, dsd = fx.detok_recipe(detok)
        save_unshared(
            {k: v.to(torch.bfloat16) for k, v in dsd.items()}, out / "audio_detokenizer" / "model.safetensors"
        )
        del detok, dsd
        gc.collect()

    summary = OrderedDict(
        model_safetensors=fx.safetensors_summary(out / "model.safetensors"),
        mimi_safetensors=fx.safetensors_summary(out / MIMI_NAME),
        detokenizer_safetensors=fx.safetensors_summary(out / "audio_detokenizer" / "model.safetensors"),
        state_dict_keys=n_keys,
    )
    manifest = OrderedDict(
        generator="scripts/reference/make_fullsize.py (library scripts/reference/fixtures.py)",
        command="python scripts/reference/make_fullsize.py --out DIR" + (f" --seed {seed}" if seed != 0 else ""),
        seed=seed,
        versions=fx.versions(),
        config="reconstructed LFM2-Audio-1.5B (scripts/reference/README.md, 'Full-size checkpoint'): LFM2-1.2B "
        "backbone, conformer 17x512, depthformer 6x1024 tied, tie_audio_embeddings false",
        init=OrderedDict(
            model="built in bf16 (torch default dtype bf16); >=2-D N(0, 1/fan_in); 1-D *weight/*scale "
            "1 + 0.1 N(0,1); other 1-D and pos_bias_u/v 0.05 N(0,1); buffers as computed",
            counts=init,
            mimi="get_mimi(None) with the real kwargs, default seeded init; constants perturbed, cluster_usage "
            "U(0.5,1.5), embedding_sum N(0,1), _initialized 1; fp32; attention weights saved under the "
            "released names self_attn.in_proj_weight / out_proj.weight",
            mimi_counts=mimi_init,
            detokenizer="weights_recipe.json rules (integer hash, see make_tiny / fixtures.RECIPE_TEXT) rounded to "
            "bf16 (round to nearest even); istft.window = periodic Hann rounded to bf16",
        ),
        tokenizer="LFM2 structure (Split Llama-3 regex + ByteLevel(use_regex=false), BPE ignore_merges=true); "
        "ids 0..133 special as in the tiny fixtures; the BPE was trained on fixtures.CORPUS plus 40000 "
        "synthetic pseudo-English lines (fixtures.synthetic_corpus_lines) to exactly 65536 ids, so the "
        "vocabulary and merge list have the released size (about 65.4k merges) but not its content",
        summary=summary,
        files=fx.file_table(out),
    )
    fx.write_json(out / "manifest.json", manifest)
    return manifest


@torch.no_grad()
def smoke(out: Path) -> dict:
    """Reload through the public loaders (bf16 LM, fp32 decoders) and run a short forward of every part."""
    import torch.nn.functional as F

    from liquid_audio import ChatState, LFM2AudioModel, LFM2AudioProcessor

    res = OrderedDict()
    with Timer("reload LFM2AudioModel.from_pretrained(bf16)"):
        torch.set_default_dtype(torch.bfloat16)  # avoid building the module tree in fp32 first
        model = LFM2AudioModel.from_pretrained(out, dtype=torch.bfloat16, device="cpu").eval()
        torch.set_default_dtype(torch.float32)
    file_keys = set(load_file(str(out / "model.safetensors")).keys())
    res["strict_keys"] = file_keys == set(model.state_dict().keys())
    with Timer("processor (tokenizer + mel) and prompt"):
        proc = LFM2AudioProcessor.from_pretrained(out, device="cpu").eval()
        chat = ChatState(proc, dtype=torch.bfloat16)
        chat.new_turn("system")
        chat.add_text("Perform ASR.")
        chat.end_turn()
        chat.new_turn("user")
        chat.add_audio(fx.input_wave_16k(), 16000)
        chat.end_turn()
        chat.new_turn("assistant")
    res["prefill_positions"] = int(chat["modality_flag"].shape[1])
    with Timer("bf16 prefill + text logits + one depthformer frame"):
        in_emb = model._prefill(**chat)
        last = model.lfm(inputs_embeds=in_emb, use_cache=False).last_hidden_state
        logits = F.linear(last[0, -1], model.lfm.embed_tokens.weight)
        frame = model._sample_audio_frame(last[0, -1])
    res["text_argmax"] = int(logits.argmax())
    res["frame"] = frame.tolist()
    del model
    gc.collect()
    codes = torch.stack([frame.clamp(max=2047), frame.flip(0).clamp(max=2047)], 1)[None]  # [1, 8, 2]
    with Timer("Mimi strict load + decode 2 frames (fp32)"):
        mimi = proc.mimi
        wave = mimi.decode(codes)
    res["mimi_wave_shape"] = list(wave.shape)
    with Timer("detokenizer strict load (bf16 file -> fp32 module) + decode 2 frames"):
        detok = fx.build_detokenizer(out / "audio_detokenizer" / "config.json")
        r = detok.load_state_dict(load_file(str(out / "audio_detokenizer" / "model.safetensors")), strict=True)
        res["detok_strict"] = not r.missing_keys and not r.unexpected_keys
        dw = detok(codes)
    res["detok_wave_shape"] = list(dw.shape)
    res["finite"] = bool(torch.isfinite(wave).all() and torch.isfinite(dw).all() and torch.isfinite(last).all())
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--check", action="store_true", help="reload and smoke-test the written folder")
    ap.add_argument("--check-only", action="store_true", help="only run the check on an existing folder")
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    if not args.check_only:
        m = build(args.out, args.seed)
        for f in m["files"]:
            log(f"  {f['bytes']:>13,d}  {f['path']}")
        log(f"summary: {json.dumps(m['summary'])}")
    if args.check or args.check_only:
        log(f"smoke: {json.dumps(smoke(args.out))}")
    log("timings: " + json.dumps({k: round(v, 1) for k, v in TIMES.items()}))


if __name__ == "__main__":
    main()
