"""Tokenizer goldens for the Swift byte-level BPE tokenizer, from the committed tiny fixture tokenizers.

    /tmp/refenv/bin/python scripts/reference/make_tokenizer_goldens.py [--out Tests/Fixtures/tokenizer]

Writes (see README.md next to this file, section 11):
- OUT/corpus.json: the test strings (a JSON list; built-in categories below plus strings that are exactly a vocab
  entry of tiny-a / tiny-b, picked deterministically from the committed tokenizer.json files);
- OUT/tiny-a.json, OUT/tiny-b.json: for every corpus string, `tokenizers.Tokenizer.from_file(tokenizer.json)
  .encode(s, add_special_tokens=False)` ids and token strings and `decode(ids, skip_special_tokens=False)`; the ids
  of the chat pieces and system prompts that the reference tokenizes separately (checked against the reference's
  own tokenizer object `LFM2AudioProcessor.text`, as ChatState calls it); the result of comparing the transformers
  tokenizer (`proc.text`) with the raw `tokenizers` Tokenizer on the whole corpus; decode([id]) of every id.

Deterministic: no timestamps, no randomness. Python `str` cannot hold lone surrogates, so there are none.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import unicodedata
import warnings
from collections import OrderedDict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import fixtures as fx  # noqa: E402

fx.setup_numerics()

REPO = Path(__file__).resolve().parents[2]
FIXTURES = ("tiny-a", "tiny-b")

CHAT_PIECES = [
    "<|startoftext|>",
    "<|im_start|>system\n",
    "<|im_start|>user\n",
    "<|im_start|>assistant\n",
    "<|im_end|>\n",
]
SYSTEM_PROMPTS = [
    "Perform ASR.",
    "Perform TTS. Use the US male voice.",
    "Perform TTS. Use the US female voice.",
    "Perform TTS. Use the UK male voice.",
    "Perform TTS. Use the UK female voice.",
    "Respond with interleaved text and audio.",
]

# --------------------------------------------------------------------------------------------------------------------
# Corpus (category name, strings). Order and content are part of the golden: append, do not reorder.
# --------------------------------------------------------------------------------------------------------------------

CATEGORIES: list[tuple[str, list[str]]] = [
    (
        "empty_and_single",
        [
            "",
            " ",
            "\n",
            "\t",
            "\r",
            "a",
            "Z",
            "0",
            "!",
            "'",
            "é",
            "中",
            "😀",
            "\u00a0",
            "\u3000",
            "\u200b",
            "\ufeff",
            "\x00",
            "\x7f",
            "\x1b",
            "\u00ad",
            "\u200d",
            "\ufe0f",
            "\ue000",
            "\U0010ffff",
            "\U000e0041",
            "\u0301",
            "~",
            "\\",
            '"',
        ],
    ),
    (
        "english_prose",
        [
            "Hello world!",
            "The quick brown fox jumps over the lazy dog.",
            "To be, or not to be: that is the question.",
            "Mr. Smith went to Washington, D.C., on Jan. 5th.",
            "UPPER CASE SHOUTING",
            "MiXeD cAsE",
            "CamelCaseName and snake_case_name",
            "Respond with interleaved text and audio.",
            "system",
            "assistant",
            "Ġhello",
            "Ċ",
        ],
    ),
    (
        "punctuation",
        [
            "Hello, world!",
            "...",
            "?!?!",
            "—",
            "“quoted”",
            "‘single’",
            "(parens) [brackets] {braces}",
            "a--b",
            "e.g.",
            "#hashtag @mention",
            "50% off!",
            "$3.50",
            "C++",
            "a/b\\c",
            "~`^",
            "¿Qué?",
            "«guillemets»",
            "…",
            "a;b:c",
            "!!!",
            ".,;:",
            "<tag>",
            "a&b",
            "__init__",
            "§ 5.2",
            "©®™",
            "|",
            "<|",
            "|>",
        ],
    ),
    (
        "contractions",
        [
            "it's",
            "IT'S",
            "It'S",
            "we'll",
            "WE'LL",
            "We'Ll",
            "I'm",
            "I'M",
            "you're",
            "YOU'RE",
            "they've",
            "THEY'VE",
            "he'd",
            "HE'D",
            "don't",
            "DON'T",
            "'s",
            "'S",
            "'ll",
            "'LL",
            "'t",
            "'T",
            "'re",
            "'RE",
            "'ve",
            "'VE",
            "'m",
            "'M",
            "'d",
            "'D",
            "''",
            "the '90s",
            "it’s",
            "'sup",
            "x'sy",
            "'s's",
            "Y'ALL'D'VE",
        ],
    ),
    (
        "accents_and_combining",
        [
            "café",
            "cafe\u0301",
            "naïve",
            "Zoë",
            "Ångström",
            "A\u030angstro\u0308m",
            "Straße",
            "ẞ",
            "İstanbul",
            "ıi",
            "ﬁnance",
            "ǅemal",
            "Œuvre",
            "e\u0301\u0302\u0303",
            "Z\u0334\u0321a\u0338l\u0337g\u0336o\u0335",
            "x\u20dd",
            "\u0301\u0301",
            "ç ğ ş ö ü",
            "žluťoučký",
            "Tiếng Việt",
        ],
    ),
    (
        "scripts",
        [
            "Καλημέρα",
            "αβγ ς ΑΒΓ",
            "Привет, мир!",
            "ещё",
            "Їжак ґанок",
            "مرحبا",
            "مَرْحَبًا",
            "שלום",
            "שָׁלוֹם",
            "नमस्ते",
            "क्षत्रिय",
            "สวัสดี",
            "ภาษาไทย",
            "আমি",
            "வணக்கம்",
            "안녕 세계",
            "\u1100\u1161\u11a8",
            "ქართ",
            "Բարեւ",
            "ሰላም",
            "ខ្មែរ",
            "Hi мир سلام",
            "abc\u202edef\u202c",
            "\u200eleft\u200f",
        ],
    ),
    (
        "cjk_and_kana",
        [
            "你好，世界！",
            "中文",
            "日本語の",
            "ひらがな",
            "カタカナ",
            "ｶﾀｶﾅ",
            "東京は333m",
            "全角ＡＢＣ１２３",
            "。、「」",
            "𠀀",
            "〜",
            "Hello世界",
            "iPhone 15の¥124,800",
            "ーーー",
            "中文 English",
        ],
    ),
    (
        "emoji",
        [
            "😀",
            "👍🏽",
            "👨‍👩‍👧‍👦",
            "🏳️‍🌈",
            "🇺🇸",
            "🇬🇧🇫🇷",
            "❤️",
            "☺",
            "👩🏿‍💻",
            "1️⃣",
            "#️⃣",
            "🏴󠁧󠁢󠁳󠁣󠁴󠁿",
            "Hi 👋 there",
            "emoji🙂inside",
            "🫠",
            "🤷‍♂️",
            "🏻",
            "I ❤ NY",
        ],
    ),
    (
        "digits_and_numbers",
        [
            "1",
            "12",
            "123",
            "1234",
            "12345",
            "123456",
            "1234567",
            "12345678901234567890",
            "0000",
            "007",
            "3.14159",
            "1,000,000",
            "1.000.000,00",
            "1 000 000",
            "1_000_000",
            "-42",
            "+1-555-0100",
            "2024-01-15",
            "12:30:45",
            "v1.2.3",
            "0x1F",
            "1e-5",
            "abc123def",
            "٣٤٥٦",
            "１２３４",
            "½ + ¼",
            "Ⅻ",
            "$1,234.56",
            "१२३४५",
            "①②③",
            "𝟘𝟙𝟚",
            "a1b22c333d4444",
        ],
    ),
    (
        "code",
        [
            "def f(x):\n    return x * 2\n",
            "for i in range(3):\n\tprint(i)",
            "x = {'a': 1, \"b\": [2]}",
            'print(f"{x!r:>10}")',
            "let x: Int = 42",
            'func f(_ s: String) -> String {\n    "\\(s)!"\n}',
            "x?.y ?? z",
            "@MainActor final class A {}",
            '{"key": "value", "n": [1, -3e10], "ok": true, "nil": null}',
            "[]",
            '{"a":{"b":[{}]}}',
            "ls -la | grep foo > out.txt 2>&1",
            'export PATH="$HOME/bin:$PATH"',
            "echo $((1+2))",
            "#!/usr/bin/env bash",
            '<div class="x">Hi</div>',
            "^\\s*(\\d+)\\.$",
            "https://example.org/a?c=1&d=2#f",
            "    def f():\n        pass",
        ],
    ),
    (
        "whitespace",
        [
            "  ",
            "   ",
            "    leading",
            "trailing    ",
            "  both  ",
            "a  b",
            "a   b",
            "a    b",
            "\t\t",
            "a\tb",
            "a \tb",
            "\r\n",
            "a\r\nb",
            "a\r\n\r\nb",
            "\n\n\n",
            "a\n\n\nb",
            "a \nb",
            "a  \nb",
            "a \n b",
            "line1\nline2\n",
            " \n",
            "\n ",
            "\n\n",
            "x\n\n\n\n\n\ny",
            "a\u00a0b",
            "a\u2009b",
            "a\u3000b",
            "\u2028",
            "a\u0085b",
            "\x0b\x0c",
            "\t\tindented",
            "   \n   \n",
            "word \n\n word",
            "a\r\rb",
            "x \r\n y",
            " a",
            "a ",
            "\t \t",
            "  \n\n  x",
            ". \n",
        ],
    ),
    (
        "special_tokens_embedded",
        [
            "hi<|im_end|>\nthere",
            "<|startoftext|><|im_start|>user\n",
            "<|im_start|>assistant\n",
            "<|im_end|>",
            "<|im_end|>\n",
            "<|im_end|><|im_end|>",
            "text<|audio_start|>",
            "<|text_end|>",
            "<|reserved_129|>",
            "<|pad|>",
            "<|tool_call_start|>[f(x)]<|tool_call_end|>",
            " <|im_end|> ",
            "a<|im_start|>b",
            "<|im_start|>system\nPerform ASR.<|im_end|>\n",
            "x<|startoftext|>",
            "\n<|im_end|>\n\n",
        ],
    ),
    (
        "special_tokens_partial_or_invalid",
        [
            "<|im_end",
            "<|im_end|",
            "im_end|>",
            "<|IM_END|>",
            "< |im_end| >",
            "<|im_end|>>",
            "<<|im_end|>",
            "<|reserved_134|>",
            "<|audio_start",
            "<||>",
            "<|>",
            "<|im_start|>user",
            "<|im_end |>",
            "|<|im_end|>|",
        ],
    ),
    (
        "long",
        [
            "Pneumonoultramicroscopicsilicovolcanoconiosis",
            "Donaudampfschifffahrtsgesellschaftskapitän",
            "x" * 64,
            "ab" * 16,
            "1" * 40,
            "=" * 40,
            " " * 33 + "x",
            "\n" * 17,
        ],
    ),
]


def vocab_entry_strings(tok_json: dict, decode, n: int) -> list[str]:
    """Strings that are exactly one non-special vocab entry (decoded to text), picked deterministically: the n longest
    merged tokens (ties by id) whose decoded text is valid UTF-8; build_corpus drops those already in the corpus."""
    specials = {t["id"] for t in tok_json["added_tokens"]}
    rows = []
    for tok, i in tok_json["model"]["vocab"].items():
        if i in specials or len(tok) < 2:
            continue
        s = decode([i])
        if "\ufffd" in s:
            continue
        rows.append((-len(tok), i, s))
    rows.sort()
    return [s for _, _, s in rows[:n]]


def build_corpus(raws: dict) -> tuple[list[str], list[dict]]:
    corpus, cats = [], []
    for name, strings in CATEGORIES:
        cats.append(OrderedDict(category=name, start=len(corpus), count=len(strings)))
        corpus.extend(strings)
    for fxn in FIXTURES:
        tj = json.loads((REPO / "Tests/Fixtures" / fxn / "model/tokenizer.json").read_text(encoding="utf-8"))
        raw = raws[fxn]
        seen = set(corpus)
        extra = [
            s
            for s in vocab_entry_strings(tj, lambda ids: raw.decode(ids, skip_special_tokens=False), 40)
            if s not in seen
        ][:6]
        cats.append(OrderedDict(category=f"vocab_entries_{fxn}", start=len(corpus), count=len(extra)))
        corpus.extend(extra)
    return corpus, cats


# --------------------------------------------------------------------------------------------------------------------
# JSON writing (compact rows, stable)
# --------------------------------------------------------------------------------------------------------------------


def dumps_rows(obj: dict, row_keys: tuple[str, ...]) -> str:
    """Indented JSON where the lists under `row_keys` have one compact element per line."""
    parts = ["{"]
    items = list(obj.items())
    for n, (k, v) in enumerate(items):
        sep = "," if n + 1 < len(items) else ""
        key = json.dumps(k, ensure_ascii=False)
        if k in row_keys and isinstance(v, list):
            if not v:
                parts.append(f"  {key}: []{sep}")
                continue
            parts.append(f"  {key}: [")
            for m, row in enumerate(v):
                rsep = "," if m + 1 < len(v) else ""
                parts.append("    " + json.dumps(row, ensure_ascii=False, separators=(",", ":")) + rsep)
            parts.append(f"  ]{sep}")
        else:
            body = json.dumps(v, ensure_ascii=False, indent=2).replace("\n", "\n  ")
            parts.append(f"  {key}: {body}{sep}")
    parts.append("}")
    return "\n".join(parts) + "\n"


# --------------------------------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------------------------------


def encode_row(raw, s: str) -> dict:
    enc = raw.encode(s, add_special_tokens=False)
    ids = list(enc.ids)
    assert enc.tokens == [raw.id_to_token(i) for i in ids]
    return OrderedDict(ids=ids, tokens=list(enc.tokens), decoded=raw.decode(ids, skip_special_tokens=False))


def backend_diff(hf, raw) -> list[dict]:
    """Top-level tokenizer.json sections that transformers changed when loading (proc.text.backend_tokenizer)."""
    a, b = json.loads(raw.to_str()), json.loads(hf.backend_tokenizer.to_str())
    return [
        OrderedDict(section=k, file=a.get(k), transformers=b.get(k))
        for k in sorted(set(a) | set(b))
        if a.get(k) != b.get(k)
    ]


PARTIAL_SOURCES = ["é", "中", "😀", "Zoë", "naïve", "ещё", "🇺🇸", "$1,234.56"]


def decode_partial(raw, corpus: list[str], cases: list[dict]) -> list[dict]:
    """Prefixes, suffixes and splices of the encodings of PARTIAL_SOURCES whose bytes are not valid UTF-8."""
    rows, seen = [], set()

    def add(ids):
        ids = list(ids)
        if not ids or tuple(ids) in seen:
            return
        d = raw.decode(ids, skip_special_tokens=False)
        if "\ufffd" not in d:
            return
        seen.add(tuple(ids))
        rows.append(OrderedDict(ids=ids, decoded=d))

    for src in PARTIAL_SOURCES:
        start = len(rows)
        ids = cases[corpus.index(src)]["ids"]
        for k in range(1, len(ids)):
            add(ids[:k])
            add(ids[k:])
        if len(ids) >= 2:
            add(ids[:1] + raw.encode("x", add_special_tokens=False).ids + ids[1:])  # byte run broken by ASCII
            add(ids[1:] + ids[:1])
        del rows[start + 6 :]
    return rows


def fixture_golden(fxn: str, corpus: list[str], raw, log) -> tuple[dict, dict]:
    from liquid_audio import LFM2AudioProcessor

    model_dir = REPO / "Tests/Fixtures" / fxn / "model"
    proc = LFM2AudioProcessor.from_pretrained(model_dir, device="cpu").eval()
    hf = proc.text  # the object ChatState.add_text calls: proc.text.encode(s, add_special_tokens=False)
    tj = json.loads((model_dir / "tokenizer.json").read_text(encoding="utf-8"))

    cases = [encode_row(raw, s) for s in corpus]

    # transformers tokenizer vs raw tokenizers on the whole corpus
    enc_diff, dec_diff, tok_diff, rt_fail = [], [], [], []
    for i, (s, row) in enumerate(zip(corpus, cases)):
        hf_ids = hf.encode(s, add_special_tokens=False)
        if hf_ids != row["ids"]:
            enc_diff.append(OrderedDict(index=i, raw=row["ids"], transformers=hf_ids))
        hf_dec = hf.decode(row["ids"], skip_special_tokens=False)
        if hf_dec != row["decoded"]:
            dec_diff.append(OrderedDict(index=i, raw=row["decoded"], transformers=hf_dec))
        if hf.convert_ids_to_tokens(row["ids"]) != row["tokens"]:
            tok_diff.append(i)
        if row["decoded"] != s:
            rt_fail.append(i)
    agreement = OrderedDict(
        transformers_class=f"{type(hf).__module__}.{type(hf).__name__}",
        compared="for every corpus string: proc.text.encode(s, add_special_tokens=False) vs raw ids; "
        "proc.text.decode(ids, skip_special_tokens=False) vs raw decode; proc.text.convert_ids_to_tokens(ids) "
        "vs raw tokens",
        backend_tokenizer_json_equal=hf.backend_tokenizer.to_str() == raw.to_str(),
        backend_tokenizer_json_differences=backend_diff(hf, raw),
        encode_differences=enc_diff,
        decode_differences=dec_diff,
        token_string_differences=tok_diff,
        raw_decode_not_equal_to_input=rt_fail,
    )
    log(
        f"{fxn}: {len(corpus)} strings; transformers vs raw: {len(enc_diff)} encode / {len(dec_diff)} decode / "
        f"{len(tok_diff)} token-string differences; round-trip failures {len(rt_fail)}"
    )

    def piece_rows(pieces):
        rows = []
        for p in pieces:
            r = encode_row(raw, p)
            ref_ids = hf.encode(p, add_special_tokens=False)
            r = OrderedDict(text=p, ids=r["ids"], tokens=r["tokens"], reference_equal=ref_ids == r["ids"])
            if ref_ids != r["ids"]:
                r["reference_ids"] = ref_ids
            rows.append(r)
        return rows

    chat_pieces = piece_rows(CHAT_PIECES)
    system_prompts = piece_rows(SYSTEM_PROMPTS)

    # ignore_merges sensitivity (only meaningful for the LFM2 structure)
    sens = None
    if tj["model"].get("ignore_merges"):
        from tokenizers import Tokenizer

        j2 = json.loads(raw.to_str())
        j2["model"]["ignore_merges"] = False
        raw2 = Tokenizer.from_str(json.dumps(j2))
        sens = [i for i, s in enumerate(corpus) if raw2.encode(s, add_special_tokens=False).ids != cases[i]["ids"]]

    vocab_size = raw.get_vocab_size(with_added_tokens=True)
    out = OrderedDict(
        fixture=fxn,
        generator="scripts/reference/make_tokenizer_goldens.py",
        tokenizer_file=f"Tests/Fixtures/{fxn}/model/tokenizer.json",
        tokenizer_file_sha256=fx.sha256_file(model_dir / "tokenizer.json"),
        structure=OrderedDict(
            normalizer=tj["normalizer"],
            pre_tokenizer=tj["pre_tokenizer"],
            model=OrderedDict(
                type=tj["model"]["type"],
                ignore_merges=tj["model"].get("ignore_merges"),
                byte_fallback=tj["model"].get("byte_fallback"),
                vocab=len(tj["model"]["vocab"]),
                merges=len(tj["model"]["merges"]),
            ),
            decoder=tj["decoder"],
            post_processor_type=(tj["post_processor"] or {}).get("type"),
            added_tokens=len(tj["added_tokens"]),
            vocab_size_with_added=vocab_size,
        ),
        encode_call="tokenizers.Tokenizer.from_file(tokenizer.json).encode(s, add_special_tokens=False) -> .ids, "
        ".tokens",
        decode_call="Tokenizer.decode(ids, skip_special_tokens=False)",
        corpus_file="corpus.json",
        n_cases=len(cases),
        chat_pieces=chat_pieces,
        system_prompts=system_prompts,
        chat_pieces_note="ChatState tokenizes each piece separately with proc.text.encode(piece, "
        "add_special_tokens=False) and concatenates the ids; reference_equal records that the "
        "reference's tokenizer object gives the same ids as the raw tokenizers file",
        transformers_vs_tokenizers=agreement,
        ignore_merges_sensitive_cases=sens,
        ignore_merges_note=(
            None
            if sens is None
            else "indices of corpus strings whose ids change when BPE.ignore_merges is switched off "
            "(empty: with this small trained vocabulary every vocab entry is also reachable by "
            "merges, so ignore_merges never changes a result)"
        ),
        decode_single_id_first=fx.N_SPECIALS,
        decode_single_id=[raw.decode([i], skip_special_tokens=False) for i in range(fx.N_SPECIALS, vocab_size)],
        decode_single_id_note=f"decode([id], skip_special_tokens=False) for ids {fx.N_SPECIALS}..{vocab_size - 1} "
        f"(the specials decode to their content); ids holding part of a UTF-8 sequence decode "
        f"to U+FFFD",
        decode_partial=decode_partial(raw, corpus, cases),
        decode_partial_note="decode(ids, skip_special_tokens=False) of id sequences that cut UTF-8 sequences: "
        "invalid or incomplete bytes become U+FFFD (Rust String::from_utf8_lossy: one U+FFFD "
        "per maximal invalid subpart)",
        cases=cases,
    )
    summary = OrderedDict(
        n_cases=len(cases),
        total_ids=sum(len(c["ids"]) for c in cases),
        encode_differences=len(enc_diff),
        decode_differences=len(dec_diff),
        token_string_differences=len(tok_diff),
        round_trip_failures=rt_fail,
        chat_pieces_reference_equal=all(r["reference_equal"] for r in chat_pieces + system_prompts),
        ignore_merges_sensitive_cases=sens,
    )
    return out, summary


# --------------------------------------------------------------------------------------------------------------------
# A hand-built tokenizer on which BPE.ignore_merges changes results (the trained tiny vocabularies never do)
# --------------------------------------------------------------------------------------------------------------------

# merges (rank order) and extra vocabulary entries, in byte-level symbols (Ġ = space)
IM_MERGES = [
    ("Ġ", "h"),
    ("e", "l"),
    ("l", "o"),
    ("Ġh", "el"),
    ("Ġ", "w"),
    ("o", "r"),
    ("Ġw", "or"),
    ("l", "d"),
    ("1", "2"),
    ("12", "3"),
]
IM_EXTRA_VOCAB = ["Ġhello", "Ġworld", "hello", "lol"]  # not reachable with IM_MERGES (except via ignore_merges)
IM_SPECIALS = ["<|startoftext|>", "<|im_end|>"]
IM_CASES = [
    " hello",
    "hello",
    " hello world",
    " hellohello",
    "hello hello",
    " HELLO",
    " hello\n",
    "lol",
    "lolol",
    " hel",
    " wor",
    " world!",
    " worlds",
    "123",
    "1234",
    " hello<|im_end|>",
    "<|startoftext|> hello",
    "hellolol",
    " hello  world",
    "",
]


def byte_symbols() -> list[str]:
    """GPT-2 byte-level alphabet: symbol of byte b (printable Latin-1 bytes map to themselves, the others to
    U+0100 + n in byte order)."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1)) + list(range(0xAE, 0xFF + 1))
    out, n = {}, 0
    for b in range(256):
        if b in keep:
            out[b] = chr(b)
        else:
            out[b] = chr(256 + n)
            n += 1
    return [out[b] for b in range(256)]


def ignore_merges_tokenizer_json() -> dict:
    """LFM2 structure (Split(Llama-3 regex) + ByteLevel, BPE(ignore_merges=true), ByteLevel decoder). Ids: 0..1
    specials, then the 256 byte symbols in byte order, then merge results in rank order, then IM_EXTRA_VOCAB."""
    vocab = OrderedDict((t, i) for i, t in enumerate(IM_SPECIALS))
    for sym in byte_symbols():
        vocab[sym] = len(vocab)
    for a, b in IM_MERGES:
        vocab.setdefault(a + b, len(vocab))
    for t in IM_EXTRA_VOCAB:
        vocab.setdefault(t, len(vocab))
    return OrderedDict(
        version="1.0",
        truncation=None,
        padding=None,
        added_tokens=[
            OrderedDict(id=i, content=t, single_word=False, lstrip=False, rstrip=False, normalized=False, special=True)
            for i, t in enumerate(IM_SPECIALS)
        ],
        normalizer=None,
        pre_tokenizer=OrderedDict(
            type="Sequence",
            pretokenizers=[
                OrderedDict(
                    type="Split", pattern=OrderedDict(Regex=fx.LLAMA3_REGEX), behavior="Isolated", invert=False
                ),
                OrderedDict(type="ByteLevel", add_prefix_space=False, trim_offsets=True, use_regex=False),
            ],
        ),
        post_processor=None,
        decoder=OrderedDict(type="ByteLevel", add_prefix_space=True, trim_offsets=True, use_regex=True),
        model=OrderedDict(
            type="BPE",
            dropout=None,
            unk_token=None,
            continuing_subword_prefix=None,
            end_of_word_suffix=None,
            fuse_unk=False,
            byte_fallback=False,
            ignore_merges=True,
            vocab=vocab,
            merges=[[a, b] for a, b in IM_MERGES],
        ),
    )


def ignore_merges_goldens(out_dir: Path, log) -> dict:
    from tokenizers import Tokenizer

    tj = ignore_merges_tokenizer_json()
    sub = out_dir / "ignore-merges"
    sub.mkdir(parents=True, exist_ok=True)
    (sub / "tokenizer.json").write_text(
        json.dumps(tj, ensure_ascii=False, separators=(",", ":")) + "\n", encoding="utf-8"
    )
    raw = Tokenizer.from_file(str(sub / "tokenizer.json"))
    tj2 = json.loads(json.dumps(tj))
    tj2["model"]["ignore_merges"] = False
    raw2 = Tokenizer.from_str(json.dumps(tj2))
    cases = []
    for s in IM_CASES:
        r = encode_row(raw, s)
        r = OrderedDict(text=s, **r)
        r["ids_if_ignore_merges_were_false"] = raw2.encode(s, add_special_tokens=False).ids
        cases.append(r)
    n_diff = sum(c["ids"] != c["ids_if_ignore_merges_were_false"] for c in cases)
    assert n_diff >= 5, n_diff
    log(
        f"ignore-merges tokenizer: {len(tj['model']['vocab'])} ids, {len(cases)} cases, {n_diff} depend on "
        f"ignore_merges"
    )
    doc = OrderedDict(
        generator="scripts/reference/make_tokenizer_goldens.py",
        tokenizer_file="Tests/Fixtures/tokenizer/ignore-merges/tokenizer.json",
        tokenizer_file_sha256=fx.sha256_file(sub / "tokenizer.json"),
        description="Hand-built tokenizer with the LFM2 structure whose vocabulary holds whole words that the merge "
        "table cannot build (Ġhello, Ġworld, hello, lol). With BPE.ignore_merges=true a pre-token that "
        "is itself a vocab entry is emitted as that one id; otherwise the merges run. The trained tiny "
        "vocabularies never exercise this (every entry is reachable by merges).",
        encode_call="tokenizers.Tokenizer.from_file(tokenizer.json).encode(s, add_special_tokens=False)",
        decode_call="Tokenizer.decode(ids, skip_special_tokens=False)",
        cases=cases,
    )
    (out_dir / "ignore-merges.json").write_text(dumps_rows(doc, ("cases",)), encoding="utf-8")
    return OrderedDict(cases=len(cases), depend_on_ignore_merges=n_diff)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=REPO / "Tests/Fixtures/tokenizer")
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    t0 = time.perf_counter()

    def log(msg: str) -> None:
        print(f"[tokenizer-goldens {time.perf_counter() - t0:6.2f}s] {msg}", flush=True)

    from tokenizers import Tokenizer

    raws = {f: Tokenizer.from_file(str(REPO / "Tests/Fixtures" / f / "model/tokenizer.json")) for f in FIXTURES}
    corpus, cats = build_corpus(raws)
    assert len(corpus) >= 320, len(corpus)
    for s in corpus:
        assert not any(0xD800 <= ord(c) <= 0xDFFF for c in s)
    args.out.mkdir(parents=True, exist_ok=True)
    corpus_doc = corpus  # corpus.json is a plain JSON list of strings
    (args.out / "corpus.json").write_text(
        "[\n" + ",\n".join("  " + json.dumps(s, ensure_ascii=False) for s in corpus_doc) + "\n]\n", encoding="utf-8"
    )
    n_nfc = sum(1 for s in corpus if unicodedata.is_normalized("NFC", s))
    log(f"corpus: {len(corpus)} strings in {len(cats)} categories ({len(corpus) - n_nfc} not NFC-normalized)")
    summaries = OrderedDict()
    for fxn in FIXTURES:
        out, summary = fixture_golden(fxn, corpus, raws[fxn], log)
        out["corpus_categories"] = cats
        out.move_to_end("cases")
        (args.out / f"{fxn}.json").write_text(
            dumps_rows(out, ("cases", "chat_pieces", "system_prompts", "decode_partial")), encoding="utf-8"
        )
        summaries[fxn] = summary
    summaries["ignore-merges"] = ignore_merges_goldens(args.out, log)
    print(json.dumps(summaries, ensure_ascii=False, indent=1))
    for f in sorted(p for p in args.out.rglob("*") if p.is_file()):
        log(f"{f.relative_to(args.out)}: {f.stat().st_size} bytes, sha256 {fx.sha256_file(f)}")


if __name__ == "__main__":
    main()
