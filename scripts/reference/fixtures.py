"""Shared library for the LFM2-Audio reference fixture generators.

Everything here runs the *reference implementation* (PyPI ``liquid-audio`` 1.3.0 on transformers 5.24) on CPU in
float32. See ``README.md`` next to this file for what each generator builds and checks.

Contents:
- numerics setup (1 thread, deterministic algorithms);
- config builders for the two tiny configurations (``tiny-a``, ``tiny-b``) in the hub's ``config.json`` layout;
- random initialisation rules, bf16 rounding;
- byte-level BPE tokenizer construction (LFM2 structure or plain GPT-2 ByteLevel);
- tiny Mimi construction (overriding the module-level kwargs of ``liquid_audio.moshi.models.loaders``);
- the integer-hash weight recipe of the audio detokenizer;
- steering row swaps, greedy-decision margin recording, golden collection;
- manifest helpers (sha256 of files).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import sys
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import torch

# --------------------------------------------------------------------------------------------------------------------
# Numerics
# --------------------------------------------------------------------------------------------------------------------

NUMERICS = {
    "dtype": "float32",
    "device": "cpu",
    "threads": 1,
    "deterministic_algorithms": True,
    "attention_implementation": "sdpa (LFM2 backbone; what from_pretrained picks without flash-attn); the conformer "
    "uses its own manual attention; the depthformer calls F.scaled_dot_product_attention directly",
    "weights": "every floating-point tensor rounded to bf16 before any reference run; model.safetensors stored in "
    "bf16 (exact), Mimi stored fp32 (values bf16-exact), detokenizer weights from an exact fp32 integer-hash recipe",
    "decoding": "greedy (temperature None, top_k None) for text and every codebook",
    "mode": "eval() for every module (dropout off, batch-norm running statistics, no mel dither)",
}


def setup_numerics() -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("MKL_NUM_THREADS", "1")
    os.environ.setdefault("RAYON_NUM_THREADS", "1")  # tokenizers' BPE trainer
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    torch.set_num_threads(1)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set (only allowed once per process)
        pass
    torch.use_deterministic_algorithms(True)
    torch.set_default_dtype(torch.float32)


def versions() -> dict[str, str]:
    import tokenizers
    import safetensors
    import transformers

    import liquid_audio

    overlay = Path(liquid_audio.__file__).resolve().parent
    patched = "refenv py311 patch" in (overlay / "utils.py").read_text()
    la_version = "1.3.0"
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "tokenizers": tokenizers.__version__,
        "safetensors": safetensors.__version__,
        "numpy": np.__version__,
        "liquid_audio": la_version
        + (
            " (PyPI wheel unpacked by refenv.sh, PEP 695 type hints patched for Python 3.11; " "no numerical effect)"
            if patched
            else " (unmodified)"
        ),
    }


# --------------------------------------------------------------------------------------------------------------------
# Configurations
# --------------------------------------------------------------------------------------------------------------------

PREPROCESSOR = OrderedDict(
    sample_rate=16000,
    normalize="per_feature",
    window_size=0.025,
    window_stride=0.01,
    window="hann",
    features=128,
    n_fft=512,
    log=True,
    frame_splicing=1,
    dither=1e-05,
    pad_to=0,
    pad_value=0.0,
)


def encoder_config(
    *, n_layers: int, d_model: int, n_heads: int, sub_channels: int, ff_expansion: int, kernel: int
) -> dict:
    """All 25 fields of liquid_audio's ConformerEncoderConfig (NeMo FastConformer values of the real model)."""
    return OrderedDict(
        feat_in=128,
        feat_out=-1,
        n_layers=n_layers,
        d_model=d_model,
        subsampling="dw_striding",
        subsampling_factor=8,
        subsampling_conv_channels=sub_channels,
        causal_downsampling=False,
        reduction=None,
        reduction_position=None,
        reduction_factor=1,
        ff_expansion_factor=ff_expansion,
        self_attention_model="rel_pos",
        n_heads=n_heads,
        att_context_size=[-1, -1],
        xscaling=False,
        untie_biases=True,
        pos_emb_max_len=5000,
        conv_kernel_size=kernel,
        conv_norm_type="batch_norm",
        conv_context_size=None,
        dropout=0.1,
        dropout_pre_encoder=0.1,
        dropout_emb=0.0,
        dropout_att=0.1,
    )


def _lfm_modern(
    *, vocab, hidden, layer_types, heads, kv_heads, ff, multiple_of, auto_adjust=True, theta=1_000_000.0
) -> dict:
    """`lfm` block with the transformers-5 spellings (intermediate_size, layer_types, rope_parameters,
    tie_word_embeddings), as after the hub's "Fix for HF @strict config" commit."""
    return OrderedDict(
        model_type="lfm2",
        vocab_size=vocab,
        hidden_size=hidden,
        intermediate_size=ff,
        num_hidden_layers=len(layer_types),
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        max_position_embeddings=128000,
        initializer_range=0.02,
        norm_eps=1e-05,
        use_cache=True,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=7,
        tie_word_embeddings=True,
        rope_parameters=OrderedDict(rope_theta=theta, rope_type="default"),
        conv_bias=False,
        conv_L_cache=3,
        block_multiple_of=multiple_of,
        block_ffn_dim_multiplier=1.0,
        block_auto_adjust_ff_dim=auto_adjust,
        full_attn_idxs=None,
        layer_types=list(layer_types),
    )


def _lfm_legacy(*, vocab, hidden, layer_types, heads, kv_heads, ff, multiple_of, theta=1_000_000.0) -> dict:
    """`lfm` block with the legacy LFM2 spellings that transformers 5.24's Lfm2Config still accepts:
    block_ff_dim (popped into intermediate_size), full_attn_idxs (-> layer_types), rope_theta (-> rope_parameters),
    tie_embedding (-> tie_word_embeddings); plus the legacy keys that are ignored at inference."""
    full_attn_idxs = [i for i, t in enumerate(layer_types) if t == "full_attention"]
    return OrderedDict(
        architectures=["Lfm2ForCausalLM"],
        model_type="lfm2",
        vocab_size=vocab,
        hidden_size=hidden,
        block_dim=hidden,
        conv_dim=hidden,
        conv_dim_out=hidden,
        block_ff_dim=ff,
        block_auto_adjust_ff_dim=True,
        block_multiple_of=multiple_of,
        block_ffn_dim_multiplier=1.0,
        block_mlp_init_scale=1.0,
        block_out_init_scale=1.0,
        block_use_swiglu=True,
        block_use_xavier_init=True,
        conv_use_xavier_init=True,
        block_norm_eps=1e-05,
        norm_eps=1e-05,
        num_hidden_layers=len(layer_types),
        full_attn_idxs=full_attn_idxs,
        num_attention_heads=heads,
        num_heads=heads,
        num_key_value_heads=kv_heads,
        max_position_embeddings=128000,
        initializer_range=0.02,
        conv_L_cache=3,
        conv_bias=False,
        rope_theta=theta,
        tie_embedding=True,
        use_pos_enc=True,
        use_cache=True,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=7,
    )


def _mimi_overrides(*, dimension, n_filters, tr_layers, tr_heads, tr_ff, cb_dim, n_q=32):
    """Complete (overridden) kwargs dicts for liquid_audio.moshi.models.loaders.get_mimi."""
    from liquid_audio.moshi.models import loaders

    seanet = OrderedDict(loaders._seanet_kwargs)
    seanet.update(dimension=dimension, n_filters=n_filters)
    quantizer = OrderedDict(loaders._quantizer_kwargs)
    quantizer.update(dimension=cb_dim, n_q=n_q, input_dimension=dimension, output_dimension=dimension)
    transformer = OrderedDict(loaders._transformer_kwargs)
    transformer.update(
        d_model=dimension,
        num_heads=tr_heads,
        num_layers=tr_layers,
        dim_feedforward=tr_ff,
        input_dimension=dimension,
        output_dimensions=[dimension],
    )
    return OrderedDict(seanet=seanet, quantizer=quantizer, transformer=transformer)


LLAMA3_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)


def get_config(name: str) -> dict:
    """Everything that defines a tiny fixture. `config_json` is written verbatim as model/config.json."""
    if name == "tiny-a":
        lfm = _lfm_modern(
            vocab=512,
            hidden=64,
            layer_types=["conv", "full_attention", "conv", "full_attention"],
            heads=4,
            kv_heads=2,
            ff=256,
            multiple_of=64,
        )
        config_json = OrderedDict(
            architectures=["Lfm2AudioForConditionalGeneration"],
            codebooks=8,
            tie_audio_embeddings=False,
            semantic_codebook_factor=100,
            codebook_weight="log",
            text_loss_multiplier=1.0,
            audio_loss_multiplier=1.0,
            interleaved_n_text=6,
            interleaved_n_audio=12,
            preprocessor=PREPROCESSOR,
            encoder=encoder_config(n_layers=2, d_model=64, n_heads=4, sub_channels=32, ff_expansion=4, kernel=9),
            lfm=lfm,
            depthformer=OrderedDict(layers=2, dim=64, tie=True),
        )
        detok = OrderedDict(
            architectures=["Lfm25AudioTokenizer"],
            model_type="lfm2",
            vocab_size=128,
            hidden_size=512,
            intermediate_size=256,
            block_auto_adjust_ff_dim=False,
            num_hidden_layers=2,
            layer_types=["conv", "sliding_attention"],
            num_attention_heads=8,
            num_key_value_heads=8,
            sliding_window=30,
            output_size=1282,
            conv_bias=True,
            conv_L_cache=3,
            norm_eps=1e-05,
            rope_parameters=OrderedDict(rope_theta=10000.0, rope_type="default"),
            max_position_embeddings=128000,
            tie_word_embeddings=False,
            pad_token_id=0,
            bos_token_id=1,
            eos_token_id=7,
        )
        return dict(
            name=name,
            description="README section 3 tiny configuration (transformers-5 key spellings, LFM2 tokenizer structure)",
            config_json=config_json,
            mimi=_mimi_overrides(dimension=32, n_filters=4, tr_layers=2, tr_heads=4, tr_ff=64, cb_dim=4),
            detok=detok,
            tokenizer=dict(kind="lfm2", vocab_size=512),
            default_seed=1250,
        )
    if name == "tiny-b":
        lfm = _lfm_legacy(
            vocab=640,
            hidden=36,
            layer_types=["conv", "conv", "full_attention", "conv", "full_attention", "conv"],
            heads=6,
            kv_heads=2,
            ff=320,
            multiple_of=32,
        )
        config_json = OrderedDict(
            architectures=["Lfm2AudioForConditionalGeneration"],
            codebooks=8,
            tie_audio_embeddings=False,
            semantic_codebook_factor=100,
            codebook_weight="log",
            interleaved_n_text=6,
            interleaved_n_audio=12,
            preprocessor=PREPROCESSOR,
            encoder=encoder_config(n_layers=3, d_model=48, n_heads=6, sub_channels=16, ff_expansion=2, kernel=5),
            lfm=lfm,
            depthformer=OrderedDict(layers=3, dim=64, tie=True),
        )
        detok = OrderedDict(
            architectures=["Lfm25AudioTokenizer"],
            model_type="lfm2",
            vocab_size=256,
            hidden_size=512,
            block_dim=512,
            block_ff_dim=768,
            block_auto_adjust_ff_dim=True,
            block_multiple_of=256,
            block_ffn_dim_multiplier=1.0,
            num_hidden_layers=3,
            layer_types=["conv", "sliding_attention", "conv"],
            num_attention_heads=16,
            num_key_value_heads=8,
            sliding_window=24,
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
        return dict(
            name=name,
            description="second tiny configuration: other sizes and layer pattern, legacy `lfm` key spellings, "
            "plain GPT-2 ByteLevel tokenizer",
            config_json=config_json,
            mimi=_mimi_overrides(dimension=24, n_filters=2, tr_layers=3, tr_heads=4, tr_ff=48, cb_dim=2),
            detok=detok,
            tokenizer=dict(kind="gpt2", vocab_size=640),
            default_seed=1276,
        )
    raise KeyError(name)


CONFIG_NAMES = ("tiny-a", "tiny-b")

# --------------------------------------------------------------------------------------------------------------------
# Tokenizer
# --------------------------------------------------------------------------------------------------------------------

NAMED_SPECIALS = {
    0: "<|pad|>",
    1: "<|startoftext|>",
    2: "<|endoftext|>",
    3: "<|fim_pre|>",
    4: "<|fim_mid|>",
    5: "<|fim_suf|>",
    6: "<|im_start|>",
    7: "<|im_end|>",
    8: "<|tool_list_start|>",
    9: "<|tool_list_end|>",
    10: "<|tool_call_start|>",
    11: "<|tool_call_end|>",
    12: "<|tool_response_start|>",
    13: "<|tool_response_end|>",
    128: "<|audio_start|>",
    130: "<|text_end|>",
}
N_SPECIALS = 134


def special_tokens() -> list[str]:
    """Ids 0..133. Named ones follow the LFM2 convention; the rest are <|reserved_N|> with N = id."""
    return [NAMED_SPECIALS.get(i, f"<|reserved_{i}|>") for i in range(N_SPECIALS)]


# A small hand-written corpus (deterministic; no downloads). Enough distinct byte pairs for 250+ merges.
CORPUS = """\
Respond with interleaved text and audio.
Perform ASR.
Perform TTS. Use the US male voice.
Perform TTS. Use the US female voice.
Perform TTS. Use the UK male voice.
Perform TTS. Use the UK female voice.
system
user
assistant
The quick brown fox jumps over the lazy dog near the quiet river bank.
A small model answers questions about the weather, the time and the news.
Speech recognition turns spoken words into written text; speech synthesis does the reverse.
She sells sea shells by the sea shore, and the shells she sells are surely sea shells.
How are you doing today? I am doing well, thank you for asking!
Please read the following sentence aloud: the rain in Spain stays mainly in the plain.
Numbers like 12, 345, 6789 and 2024 are split into groups of at most three digits.
It's a nice day, isn't it? We'll see what they've said and what you'd like.
The conversation continues with another question and another answer, again and again.
Audio frames arrive every eighty milliseconds, eight codes per frame, at twelve and a half hertz.
The encoder converts a log mel spectrogram into one embedding per audio token.
Generation alternates between six text tokens and twelve audio frames in interleaved mode.
Tokenizers split text into pieces, map bytes to symbols and merge frequent pairs.
When the model finishes speaking, it emits an end of audio code and returns to text.
Hello world! Hello again, world. Goodbye for now, and see you tomorrow morning.
Translate this into French: good morning, good evening, good night.
What is the capital of France? The capital of France is Paris.
Water boils at one hundred degrees Celsius at sea level.
The library opens at nine o'clock and closes at five thirty in the afternoon.
Children were playing in the park while their parents talked under the trees.
Mathematics, physics, chemistry and biology are taught in the science building.
He said: "Don't worry, everything will be fine." Then he smiled and left.
Tabs\tand  double  spaces, new\nlines and trailing spaces   are handled too.
Email me at someone@example.com or visit https://example.org/page?id=42.
"""


def _corpus_lines() -> list[str]:
    lines = CORPUS.splitlines()
    # a few deterministic variations to give the trainer more pairs
    extra = []
    for i, line in enumerate(lines):
        extra.append(line.lower())
        extra.append(line.upper() if i % 3 == 0 else line[::-1])
    return lines + extra


def synthetic_corpus_lines(n_lines: int, seed: int = 12345) -> list[str]:
    """Deterministic pseudo-English lines (syllable words, capitals, punctuation, numbers) used to train a BPE up to
    the released vocabulary size of 65536 (make_fullsize.py). No downloads."""
    rng = np.random.default_rng(seed)
    onsets = [
        "",
        "b",
        "c",
        "d",
        "f",
        "g",
        "h",
        "j",
        "k",
        "l",
        "m",
        "n",
        "p",
        "r",
        "s",
        "t",
        "v",
        "w",
        "z",
        "ch",
        "sh",
        "th",
        "st",
        "tr",
        "pl",
        "gr",
        "br",
        "cl",
    ]
    nuclei = ["a", "e", "i", "o", "u", "ai", "ea", "ou", "io", "y"]
    codas = ["", "", "n", "r", "s", "t", "l", "m", "ck", "nd", "st", "rt", "ng"]
    lines = []
    for i in range(n_lines):
        n_words = int(rng.integers(4, 14))
        words = []
        for _ in range(n_words):
            n_syl = int(rng.integers(1, 5))
            idx = rng.integers(0, [len(onsets), len(nuclei), len(codas)], size=(n_syl, 3))
            words.append("".join(onsets[a] + nuclei[b] + codas[c] for a, b, c in idx))
        if i % 7 == 0:
            words[0] = words[0].capitalize()
        lines.append(" ".join(words) + (". " if i % 3 else ", ") + str(int(rng.integers(0, 100000))))
    return lines


def build_tokenizer(kind: str, vocab_size: int, extra_lines: list[str] | None = None):
    """Train a byte-level BPE with the `tokenizers` library.

    kind "lfm2": the released LFM2 structure (pre_tokenizer Sequence[Split(Llama-3 regex, isolated),
    ByteLevel(add_prefix_space=false, use_regex=false)], BPE(ignore_merges=true), ByteLevel decoder,
    TemplateProcessing post-processor prepending <|startoftext|> that the reference never triggers because it
    encodes with add_special_tokens=False).
    kind "gpt2": plain ByteLevel(add_prefix_space=false, use_regex=true) pre-tokenizer (GPT-2 regex), BPE without
    ignore_merges, ByteLevel decoder, no post-processor.
    """
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    if kind == "lfm2":
        tok = Tokenizer(models.BPE(ignore_merges=True, byte_fallback=False, fuse_unk=False))
        tok.pre_tokenizer = pre_tokenizers.Sequence(
            [
                pre_tokenizers.Split(Regex(LLAMA3_REGEX), behavior="isolated", invert=False),
                pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False),
            ]
        )
    elif kind == "gpt2":
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True)
    else:
        raise KeyError(kind)
    tok.decoder = decoders.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True)
    specials = special_tokens()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=1,
        show_progress=False,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(_corpus_lines() + list(extra_lines or []), trainer=trainer)
    if kind == "lfm2":
        tok.post_processor = processors.TemplateProcessing(
            single="<|startoftext|> $A",
            pair="<|startoftext|> $A <|startoftext|> $B",
            special_tokens=[("<|startoftext|>", 1)],
        )
    got = tok.get_vocab_size(with_added_tokens=True)
    if got != vocab_size:
        raise RuntimeError(f"tokenizer trained to {got} tokens, wanted {vocab_size}: enlarge CORPUS")
    for i, s in enumerate(specials):
        assert tok.token_to_id(s) == i, (s, tok.token_to_id(s), i)
    return tok


def _added_token_entry(content: str) -> dict:
    return OrderedDict(content=content, lstrip=False, normalized=False, rstrip=False, single_word=False, special=True)


CHAT_TEMPLATE = (
    "{{- bos_token -}}\n"
    "{%- for message in messages -%}\n"
    "{{- '<|im_start|>' + message['role'] + '\\n' -}}\n"
    "{%- if message['content'] is string -%}{{- message['content'] -}}\n"
    "{%- else -%}{%- for item in message['content'] -%}{%- if item['type'] == 'text' -%}{{- item['text'] -}}"
    "{%- endif -%}{%- endfor -%}{%- endif -%}\n"
    "{{- '<|im_end|>\\n' -}}\n"
    "{%- endfor -%}\n"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}\n"
)


def write_tokenizer_files(tok, model_dir: Path) -> None:
    """tokenizer.json, tokenizer_config.json, special_tokens_map.json, chat_template.jinja."""
    tj = json.loads(tok.to_str())
    (model_dir / "tokenizer.json").write_text(json.dumps(tj, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    specials = special_tokens()
    cfg = OrderedDict(
        add_bos_token=False,
        add_eos_token=False,
        added_tokens_decoder=OrderedDict((str(i), _added_token_entry(s)) for i, s in enumerate(specials)),
        bos_token="<|startoftext|>",
        clean_up_tokenization_spaces=False,
        eos_token="<|im_end|>",
        extra_special_tokens={},
        legacy=False,
        model_max_length=1000000000000000019884624838656,
        pad_token="<|pad|>",
        sp_model_kwargs={},
        spaces_between_special_tokens=False,
        tokenizer_class="PreTrainedTokenizerFast",
        use_default_system_prompt=False,
        use_fast=True,
    )
    (model_dir / "tokenizer_config.json").write_text(
        json.dumps(cfg, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
    )
    stm = OrderedDict(
        bos_token=_added_token_entry("<|startoftext|>"),
        eos_token=_added_token_entry("<|im_end|>"),
        pad_token=_added_token_entry("<|pad|>"),
    )
    for v in stm.values():
        v.pop("special")
    (model_dir / "special_tokens_map.json").write_text(
        json.dumps(stm, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
    )
    (model_dir / "chat_template.jinja").write_text(CHAT_TEMPLATE, encoding="utf-8")


# --------------------------------------------------------------------------------------------------------------------
# Random initialisation and bf16 rounding
# --------------------------------------------------------------------------------------------------------------------


def fan_in(t: torch.Tensor) -> int:
    """torch's convention (torch.nn.init._calculate_fan_in_and_fan_out): size(1) * prod(size(2:)).
    Linear [out, in] -> in; Embedding [V, D] -> D; Conv1d [out, in/groups, K] -> in/groups*K;
    ConvTranspose1d [in, out/groups, K] -> out/groups*K."""
    return int(torch.nn.init._calculate_fan_in_and_fan_out(t)[0])


@torch.no_grad()
def perturb_(t: torch.Tensor, g: torch.Generator) -> None:
    """c + max(0.1*|c|, 0.05) * N(0, 1), elementwise (for norm weights, biases, layer scales, pos_bias_u/v)."""
    noise = torch.randn(t.shape, generator=g, dtype=torch.float32)
    t.copy_(t + torch.clamp(0.1 * t.abs(), min=0.05) * noise)


@torch.no_grad()
def round_bf16_(module: torch.nn.Module) -> int:
    """Round every floating-point tensor of the state dict (parameters and persistent buffers) to bf16 in place.
    Non-persistent buffers (rotary inv_freq, the conformer's positional table `pe`) are recomputed by the loaders
    and are left alone."""
    n = 0
    seen = set()
    for t in module.state_dict(keep_vars=True).values():
        if t.is_floating_point() and id(t) not in seen:
            seen.add(id(t))
            t.data.copy_(t.data.to(torch.bfloat16).to(t.dtype))
            n += 1
    return n


@torch.no_grad()
def randomize_lfm2_audio_(model: torch.nn.Module, g: torch.Generator) -> dict:
    """README section 3: >=2-D weights ~ N(0, 1/fan_in) (except the conformer's pos_bias_u/v, which are constants);
    every 1-D parameter and pos_bias_u/v perturbed; batch-norm running_var ~ U(0.5, 1.5), running_mean ~ 0.1 N(0,1).
    codebook_offsets, audio_loss_weights and num_batches_tracked keep their computed values."""
    counts = {"normal_fan_in": 0, "perturbed": 0, "running_var": 0, "running_mean": 0, "kept_buffers": []}
    for name, p in model.named_parameters():  # shared (tied) parameters appear once
        if p.dim() >= 2 and not name.endswith(("pos_bias_u", "pos_bias_v")):
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float32) / math.sqrt(fan_in(p)))
            counts["normal_fan_in"] += 1
        else:
            perturb_(p, g)
            counts["perturbed"] += 1
    for name, b in model.named_buffers():
        if name.endswith("running_var"):
            b.copy_(0.5 + torch.rand(b.shape, generator=g, dtype=torch.float32))
            counts["running_var"] += 1
        elif name.endswith("running_mean"):
            b.copy_(0.1 * torch.randn(b.shape, generator=g, dtype=torch.float32))
            counts["running_mean"] += 1
        else:
            counts["kept_buffers"].append(name)
    # keep the list short in the manifest
    persistent = set(model.state_dict())
    counts["kept_buffers"] = sorted({n.split(".")[-1] for n in counts["kept_buffers"] if n in persistent})
    return counts


@torch.no_grad()
def randomize_mimi_(mimi: torch.nn.Module, g: torch.Generator) -> dict:
    """Mimi keeps its default (seeded) >=2-D init; constant parameters (LayerNorm weight/bias, layer scales) are
    perturbed; buffers: cluster_usage ~ U(0.5, 1.5), embedding_sum ~ N(0, 1), _initialized = 1."""
    counts = {"perturbed_constant": 0, "cluster_usage": 0, "embedding_sum": 0, "initialized": 0}
    for name, p in mimi.named_parameters():
        if p.numel() > 1 and bool((p == p.reshape(-1)[0]).all()):
            perturb_(p, g)
            counts["perturbed_constant"] += 1
    for name, b in mimi.named_buffers():
        if name.endswith("cluster_usage"):
            b.copy_(0.5 + torch.rand(b.shape, generator=g, dtype=torch.float32))
            counts["cluster_usage"] += 1
        elif name.endswith("embedding_sum"):
            b.copy_(torch.randn(b.shape, generator=g, dtype=torch.float32))
            counts["embedding_sum"] += 1
        elif name.endswith("_initialized"):
            b.fill_(1.0)
            counts["initialized"] += 1
    return counts


def state_dict_for_saving(module: torch.nn.Module, dtype: torch.dtype | None) -> dict[str, torch.Tensor]:
    """Full state_dict with every entry an independent contiguous tensor (tied duplicates cloned)."""
    out = {}
    for k, v in module.state_dict().items():
        v = v.detach()
        if dtype is not None and v.is_floating_point():
            v = v.to(dtype)
        out[k] = v.contiguous().clone()
    return out


# --------------------------------------------------------------------------------------------------------------------
# Mimi
# --------------------------------------------------------------------------------------------------------------------


def set_mimi_kwargs(mimi_cfg: dict) -> dict:
    """Replace the module-level kwargs used by get_mimi; returns the previous ones."""
    from liquid_audio.moshi.models import loaders

    old = dict(
        seanet=loaders._seanet_kwargs, quantizer=loaders._quantizer_kwargs, transformer=loaders._transformer_kwargs
    )
    loaders._seanet_kwargs = dict(mimi_cfg["seanet"])
    loaders._quantizer_kwargs = dict(mimi_cfg["quantizer"])
    loaders._transformer_kwargs = dict(mimi_cfg["transformer"])
    return old


def mimi_state_dict_kyutai_names(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The released Kyutai file stores the fused attention projections as `self_attn.in_proj_weight` and
    `self_attn.out_proj.weight`; the vendored module keeps `in_projs.0.weight` / `out_projs.0.weight` in memory and
    maps the file names back in `StreamingMultiheadAttention._load_hook`. Save with the released names."""
    out = {}
    for k, v in sd.items():
        if k.endswith("self_attn.in_projs.0.weight"):
            k = k[: -len("in_projs.0.weight")] + "in_proj_weight"
        elif k.endswith("self_attn.out_projs.0.weight"):
            k = k[: -len("out_projs.0.weight")] + "out_proj.weight"
        out[k] = v
    return out


# --------------------------------------------------------------------------------------------------------------------
# Detokenizer integer-hash recipe
# --------------------------------------------------------------------------------------------------------------------

RECIPE_TEXT = {
    "seed": "seed = FNV-1a-32 of the tensor name (UTF-8 bytes; offset basis 0x811C9DC5, prime 0x01000193)",
    "hash": "i = flat row-major element index; all arithmetic on uint32 with wrap-around: "
    "x = (uint32(i) * 0x9E3779B9) ^ seed; x ^= x >> 16; x *= 0x7FEB352D; x ^= x >> 15; x *= 0x846CA68B; "
    "x ^= x >> 16",
    "u": "u = float32(int(x >> 16) - 32768) / 32768   (exact; in [-1, 1))",
    "value": "w = float32(offset) + float32(scale) * u   (exact in float32: scale is a power of two)",
    "rules": {
        "norm_weight_1d": "1-D tensors whose name contains 'norm' (operator_norm, ffn_norm, embedding_norm, "
        "q_layernorm, k_layernorm): offset 1, scale 1/8",
        "other_1d": "other 1-D tensors (biases): offset 0, scale 1/16",
        "weight_nd": "tensors with >= 2 dims: offset 0, scale 2^round(log2(sqrt(3 / fan_in))), fan_in = "
        "prod(shape[1:]) (Linear [out, in] -> in; Embedding [V, D] -> D; depthwise conv [C, 1, K] -> K)",
        "window": "istft.window: periodic Hann of length 1280 as computed by torch.hann_window(1280) "
        "(w[n] = 0.5 - 0.5 cos(2 pi n / 1280), float32), not hashed",
    },
}


def fnv1a32(s: str) -> int:
    h = 0x811C9DC5
    for b in s.encode("utf-8"):
        h ^= b
        h = (h * 0x01000193) & 0xFFFFFFFF
    return h


def hash_uniform(name: str, numel: int) -> np.ndarray:
    """u in [-1, 1) as float32, per RECIPE_TEXT."""
    seed = np.uint32(fnv1a32(name))
    with np.errstate(over="ignore"):
        x = np.arange(numel, dtype=np.uint64).astype(np.uint32)
        x = x * np.uint32(0x9E3779B9)
        x = x ^ seed
        x ^= x >> np.uint32(16)
        x = x * np.uint32(0x7FEB352D)
        x ^= x >> np.uint32(15)
        x = x * np.uint32(0x846CA68B)
        x ^= x >> np.uint32(16)
    k = (x >> np.uint32(16)).astype(np.int32) - 32768
    return k.astype(np.float32) / np.float32(32768.0)


def recipe_params(name: str, shape: tuple[int, ...]) -> tuple[float, float] | None:
    if name == "istft.window":
        return None
    if len(shape) == 1:
        return (1.0, 0.125) if "norm" in name else (0.0, 0.0625)
    fi = int(np.prod(shape[1:]))
    scale = 2.0 ** round(math.log2(math.sqrt(3.0 / fi)))
    return (0.0, float(scale))


def recipe_tensor(name: str, shape: tuple[int, ...]) -> torch.Tensor:
    params = recipe_params(name, shape)
    if params is None:
        return torch.hann_window(shape[0], dtype=torch.float32)
    offset, scale = params
    u = hash_uniform(name, int(np.prod(shape)))
    w = np.float32(offset) + np.float32(scale) * u
    return torch.from_numpy(w.reshape(shape).copy())


def build_detokenizer(detok_config_path: Path):
    """Build LFM2AudioDetokenizer the way LFM2AudioProcessor.audio_detokenizer does, minus `.cuda()`."""
    from transformers import Lfm2Config

    from liquid_audio.detokenizer import LFM2AudioDetokenizer

    cfg = Lfm2Config.from_pretrained(detok_config_path)
    cfg.layer_types = ["full_attention" if t == "sliding_attention" else t for t in cfg.layer_types]
    return LFM2AudioDetokenizer(cfg).eval()


def detok_recipe(detok: torch.nn.Module) -> tuple[dict, dict[str, torch.Tensor]]:
    """Returns (recipe json, state dict built from the recipe)."""
    tensors = []
    sd = {}
    for name, t in detok.state_dict().items():
        shape = tuple(t.shape)
        w = recipe_tensor(name, shape)
        sd[name] = w
        params = recipe_params(name, shape)
        entry = OrderedDict(name=name, shape=list(shape), dtype="float32")
        if params is None:
            entry.update(kind="hann_window_periodic", offset=None, scale=None)
        else:
            entry.update(kind="hash", offset=params[0], scale=params[1])
        entry["sha256_f32le"] = hashlib.sha256(w.numpy().astype("<f4").tobytes()).hexdigest()
        tensors.append(entry)
    recipe = OrderedDict(
        description="Deterministic weights of the tiny audio detokenizer. Regenerate every tensor bit-exactly "
        "from this recipe; sha256_f32le is the sha256 of the tensor's float32 little-endian row-major bytes.",
        **RECIPE_TEXT,
        fnv1a32_check={"": fnv1a32(""), "a": fnv1a32("a"), "emb.emb.weight": fnv1a32("emb.emb.weight")},
        n_tensors=len(tensors),
        tensors=tensors,
    )
    return recipe, sd


# --------------------------------------------------------------------------------------------------------------------
# Input waveform
# --------------------------------------------------------------------------------------------------------------------


def input_wave_16k() -> torch.Tensor:
    """1.0 s at 16 kHz: (0.3 sin(2pi 220 t) + 0.2 sin(2pi 1375.5 t + 0.5) + 0.05 sin(2pi (100 + 1500 t) t))
    * hanning(16000)^0.25 (numpy's symmetric Hann), computed in float64, returned as float32 [1, 16000]."""
    n = 16000
    t = np.arange(n, dtype=np.float64) / 16000.0
    x = (
        0.3 * np.sin(2 * np.pi * 220.0 * t)
        + 0.2 * np.sin(2 * np.pi * 1375.5 * t + 0.5)
        + 0.05 * np.sin(2 * np.pi * (100.0 + 1500.0 * t) * t)
    )
    x = x * np.hanning(n) ** 0.25
    return torch.from_numpy(x.astype(np.float32))[None, :]


SYSTEM_PROMPT = "Respond with interleaved text and audio."


def build_chat(proc, wave: torch.Tensor, system: str = SYSTEM_PROMPT, rate: int = 16000):
    """ChatState(float32): system turn, a user turn holding the clip, the assistant prompt (fixtures and ASR
    goldens)."""
    from liquid_audio import ChatState

    chat = ChatState(proc, dtype=torch.float32)
    chat.new_turn("system")
    chat.add_text(system)
    chat.end_turn()
    chat.new_turn("user")
    chat.add_audio(wave, rate)
    chat.end_turn()
    chat.new_turn("assistant")
    return chat


# --------------------------------------------------------------------------------------------------------------------
# Generation with margin recording
# --------------------------------------------------------------------------------------------------------------------


@torch.no_grad()
def run_conformer(model, chat, hooks: bool = False):
    """The conformer called exactly as LFM2AudioModel._prefill calls it (segments split by audio_in_lens, padded,
    float32). Returns (enc [B, d, T'], enc_len, captured) where captured holds, with hooks=True, the pre_encode output
    ("pre") and every layer's output ("l{i}"). Shared by make_tiny.py (goldens) and dump.py (parity dumps)."""
    conf = model.conformer
    cap: dict[str, torch.Tensor] = {}
    hs = []
    if hooks:
        hs.append(conf.pre_encode.register_forward_hook(lambda m, i, o: cap.__setitem__("pre", o[0])))
        for li, layer in enumerate(conf.layers):
            hs.append(layer.register_forward_hook(lambda m, i, o, li=li: cap.__setitem__(f"l{li}", o)))
    audio_in, lens = chat["audio_in"], chat["audio_in_lens"]
    padded = torch.nn.utils.rnn.pad_sequence(list(audio_in.mT.split(lens.tolist())), batch_first=True)
    enc, enc_len = conf(padded.mT.to(torch.float32), lens)
    for h in hs:
        h.remove()
    return enc, enc_len, cap


def top2_margin(logits: torch.Tensor) -> float:
    v = torch.topk(logits.detach().float().reshape(-1), 2).values
    return float(v[0] - v[1])


class DecisionRecorder:
    """Wraps the model's greedy decision points (instance attributes shadow the methods; the reference code paths
    are unchanged): `_sample_text_token` (text logits) and every `depth_embeddings[k].get_logits` (codebook k)."""

    def __init__(self, model):
        self.model = model
        self.events: list[tuple] = []
        orig_text = model._sample_text_token

        def text_wrap(logits, **kw):
            m = top2_margin(logits)
            tok = orig_text(logits, **kw)
            self.events.append(("text", m, int(tok.reshape(-1)[0])))
            return tok

        model._sample_text_token = text_wrap
        for k, de in enumerate(model.depth_embeddings):
            orig = de.get_logits

            def gl(e, _orig=orig, _k=k):
                out = _orig(e)
                self.events.append(("cb", _k, top2_margin(out), int(out.argmax())))
                return out

            de.get_logits = gl

    def remove(self):
        del self.model._sample_text_token
        for de in self.model.depth_embeddings:
            del de.get_logits

    def take(self):
        ev, self.events = self.events, []
        return ev


def run_stream(model, chat, mode: str, steps: int, rec: DecisionRecorder) -> list[dict]:
    """Runs generate_sequential / generate_interleaved greedily; returns one record per LM step."""
    fn = {"sequential": model.generate_sequential, "interleaved": model.generate_interleaved}[mode]
    rec.take()
    out = []
    for y in fn(**chat, max_new_tokens=steps):
        ev = rec.take()
        y = y.detach().clone().reshape(-1)
        if y.numel() == 1:
            assert len(ev) == 1 and ev[0][0] == "text", ev
            out.append(dict(step=len(out), modality="text", token=int(y[0]), margins=[ev[0][1]], yielded=True))
        else:
            assert len(ev) == 8 and all(e[0] == "cb" for e in ev), ev
            out.append(
                dict(
                    step=len(out),
                    modality="audio",
                    frame=[int(v) for v in y],
                    argmax=[e[3] for e in ev],
                    margins=[e[2] for e in ev],
                    yielded=True,
                )
            )
    ev = rec.take()
    if ev:  # interleaved mode does not yield the final <|im_end|>
        assert len(ev) == 1 and ev[0][0] == "text" and ev[0][2] == 7, ev
        out.append(dict(step=len(out), modality="text", token=7, margins=[ev[0][1]], yielded=False))
    return out


def stream_tensors(stream: list[dict]) -> dict[str, torch.Tensor]:
    text = [s["token"] for s in stream if s["modality"] == "text" and s["yielded"]]
    frames = [s["frame"] for s in stream if s["modality"] == "audio"]
    mod = [1 if s["modality"] == "text" else 3 for s in stream if s["yielded"]]
    return {
        "text_tokens": torch.tensor(text, dtype=torch.int32),
        "audio_frames": (
            torch.tensor(frames, dtype=torch.int32).T.contiguous() if frames else torch.zeros((8, 0), dtype=torch.int32)
        ),
        "step_modality": torch.tensor(mod, dtype=torch.int32),
    }


def min_margin(streams: dict[str, list[dict]], extra: list[float] = ()) -> float:
    ms = [m for st in streams.values() for s in st for m in s["margins"]] + list(extra)
    return min(ms)


# --------------------------------------------------------------------------------------------------------------------
# Files and manifest
# --------------------------------------------------------------------------------------------------------------------


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def file_table(root: Path, exclude: tuple[str, ...] = ("manifest.json",)) -> list[dict]:
    rows = []
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.relative_to(root).as_posix() not in exclude:
            rows.append(OrderedDict(path=p.relative_to(root).as_posix(), bytes=p.stat().st_size, sha256=sha256_file(p)))
    return rows


def write_json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def dtype_name(t: torch.Tensor) -> str:
    return {torch.float32: "float32", torch.int32: "int32", torch.int64: "int64", torch.bfloat16: "bfloat16"}[t.dtype]


def safetensors_summary(path: Path) -> dict:
    from safetensors import safe_open

    n, params, dtypes = 0, 0, {}
    with safe_open(str(path), "pt") as f:
        for k in f.keys():
            sl = f.get_slice(k)
            shape = sl.get_shape()
            n += 1
            params += int(np.prod(shape)) if shape else 1
            dt = sl.get_dtype()
            dtypes[dt] = dtypes.get(dt, 0) + 1
    return {"tensors": n, "elements": params, "dtypes": dict(sorted(dtypes.items()))}


def python_cmdline() -> str:
    return " ".join([Path(sys.executable).name] + sys.argv)
