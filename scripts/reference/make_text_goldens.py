"""Text-only chat goldens (float32) from the reference, for the committed tiny fixtures.

    /tmp/refenv/bin/python scripts/reference/make_text_goldens.py [--out Tests/Fixtures/text] [--search]

Run make_tokenizer_goldens.py first: the manifest records the sha256 of every file in Tests/Fixtures/tokenizer too.

For each fixture (tiny-a, tiny-b), with the committed checkpoint loaded through the public loaders
(LFM2AudioModel.from_pretrained(Path(model), dtype=float32, device="cpu").eval(), LFM2AudioProcessor.from_pretrained(
Path(model), device="cpu")) and ChatState(proc, dtype=float32):

turn 1  "<|startoftext|>" (ChatState.__init__), new_turn("system"), add_text(SYSTEM), end_turn(), new_turn("user"),
        add_text(USER), end_turn(), new_turn("assistant"); generate_sequential(**chat, max_new_tokens=24), text greedy.
turn 2  the same ChatState, then append(generated text tokens) + end_turn(), new_turn("user"), add_text(USER2),
        end_turn(), new_turn("assistant"); generate_sequential(**chat, max_new_tokens=12), greedy. The reference
        re-prefills the whole history (t2.text_ids).

A random model may emit <|audio_start|> (128) and switch to audio frames. The (SYSTEM, USER, USER2) prompts are chosen
without steering: candidates are tried in a fixed order until the streams stay text, every greedy decision has a top-2
margin >= 1e-3, turn 1 yields >= 16 tokens and stops the way the fixture asks (tiny-a: with <|im_end|>, tiny-b: at
max_new_tokens). The first candidates of each list are the ones an offline `--search` run found, so the default run
accepts on its first try; the rest of the list is the fallback search space. Writes OUT/<fixture>.safetensors and
OUT/manifest.json. See README.md next to this file, section 12.
"""

from __future__ import annotations

import argparse
import inspect
import itertools
import json
import sys
import time
import warnings
from collections import OrderedDict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import fixtures as fx  # noqa: E402

fx.setup_numerics()

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
STEPS1 = 24
STEPS2 = 12
MIN_STEPS1 = 16
MIN_STEPS2 = 8
MIN_MARGIN = 1e-3
IM_END, AUDIO_START = 7, 128

# The fallback grid (short strings keep the goldens small). Per fixture: the preferred triples first.
SYSTEMS = [
    "Be brief.",
    "Sé breve.",
    "Réponds vite.",
    "Answer briefly.",
    "Sei kurz.",
    "Be kind.",
    "Отвечай кратко.",
    "Use plain words.",
    "You are Zoë.",
    "Speak simply.",
    "Sois bref.",
    "Кратко.",
    "简短回答。",
    "Sé amable 😊",
    "Réponds en français.",
    "Hi.",
    "Ja.",
    "Sé.",
    "Oui.",
    "Да.",
    "是。",
    "Go.",
    "OK.",
]
USERS = [
    "Hi!",
    "Ça va ?",
    "2+2=?",
    "Name a color.",
    "Who are you?",
    "Café or tea?",
    "Count to five.",
    "Γειά σου!",
    "Is it raining?",
    "Say “hello”.",
    "Why?",
    "Good night 🌙",
    "Où est la gare ?",
    "こんにちは",
    "Привет!",
    "¿Qué tal?",
    "naïve café",
    "Yo",
    "Ça?",
    "Ok?",
    "Нет.",
    "Ja?",
    "¿Y?",
    "Hm.",
    "Zoë?",
]
USERS2 = [
    "And then?",
    "Merci !",
    "Tell me more.",
    "Why so?",
    "Noch einmal, bitte.",
    "OK 👍",
    "Go on.",
    "Thanks!",
    "Et ensuite ?",
    "Danke schön!",
    "Ещё?",
]

FIXTURE_SPEC = {
    # found by `--search` (shortest prompt among the acceptable ones; USER2 with the largest turn-2 margin)
    "tiny-a": dict(want_stop="im_end", preferred=[("Hi.", "Ok?", "Ещё?")]),
    "tiny-b": dict(want_stop="max_new_tokens", preferred=[("Sé breve.", "2+2=?", "Ещё?")]),
}


class Rejected(Exception):
    pass


# --------------------------------------------------------------------------------------------------------------------
# Reference runs
# --------------------------------------------------------------------------------------------------------------------


class TextRecorder:
    """Shadows model._sample_text_token (instance attribute; the reference code path is unchanged) and records, for
    every text decision, a copy of the logits the reference computed (F.linear(h[0, -1], embed_tokens.weight) inside
    generate_sequential) and the top-2 margin."""

    def __init__(self, model):
        self.model = model
        self.logits: list[torch.Tensor] = []
        orig = model._sample_text_token

        def wrap(logits, **kw):
            self.logits.append(logits.detach().clone())
            return orig(logits, **kw)

        model._sample_text_token = wrap

    def take(self) -> list[torch.Tensor]:
        out, self.logits = self.logits, []
        return out

    def remove(self) -> None:
        del self.model._sample_text_token


def new_chat(proc, system: str, user: str):
    from liquid_audio import ChatState

    chat = ChatState(proc, dtype=torch.float32)
    chat.new_turn("system")
    chat.add_text(system)
    chat.end_turn()
    chat.new_turn("user")
    chat.add_text(user)
    chat.end_turn()
    chat.new_turn("assistant")
    return chat


def second_turn(chat, history_tokens: list[int], user2: str):
    """ChatState.append(generated text tokens) + end_turn(), then the next user turn and the generation prompt."""
    from liquid_audio import LFMModality

    text = torch.tensor([history_tokens], dtype=chat.text.dtype)
    chat.append(
        text=text,
        audio_out=chat.audio_out.new_empty((chat.codebooks, 0)),
        modality_flag=torch.full((1, len(history_tokens)), int(LFMModality.TEXT), dtype=torch.long),
    )
    chat.end_turn()
    chat.new_turn("user")
    chat.add_text(user2)
    chat.end_turn()
    chat.new_turn("assistant")
    return chat


@torch.no_grad()
def greedy_text_run(model, chat, steps: int, rec: TextRecorder) -> dict:
    """generate_sequential with text greedy. Stops consuming the generator at the first <|audio_start|> (the stream
    is rejected then). Returns tokens, logits [n, V], margins, stop reason."""
    rec.take()
    tokens = []
    for y in model.generate_sequential(**chat, max_new_tokens=steps):
        y = y.reshape(-1)
        if y.numel() != 1:
            raise AssertionError("audio frame in a text-only stream")
        tokens.append(int(y[0]))
        if tokens[-1] == AUDIO_START:
            break
    logits = torch.stack(rec.take())
    assert logits.shape[0] == len(tokens)
    assert all(int(l.argmax()) == t for l, t in zip(logits, tokens))
    margins = [fx.top2_margin(l) for l in logits]
    if AUDIO_START in tokens:
        stop = "audio_start"
    elif tokens[-1] == IM_END:
        stop = "im_end"
    else:
        assert len(tokens) == steps
        stop = "max_new_tokens"
    return dict(tokens=tokens, logits=logits, margins=margins, stop=stop)


def check_run(run: dict, min_len: int, want_stop: str | None, what: str) -> None:
    if run["stop"] == "audio_start":
        raise Rejected(f"{what}: <|audio_start|> at step {run['tokens'].index(AUDIO_START)}")
    if len(run["tokens"]) < min_len:
        raise Rejected(f"{what}: stopped with <|im_end|> after {len(run['tokens'])} < {min_len} tokens")
    if want_stop is not None and run["stop"] != want_stop:
        raise Rejected(f"{what}: stop reason {run['stop']}, wanted {want_stop}")
    m = min(run["margins"])
    if m < MIN_MARGIN:
        raise Rejected(f"{what}: top-2 margin {m:.3g} < {MIN_MARGIN} at step {run['margins'].index(m)}")


def candidates(fxn: str):
    pref = FIXTURE_SPEC[fxn]["preferred"]
    seen = set()
    for s, u in itertools.chain(((p[0], p[1]) for p in pref), itertools.product(SYSTEMS, USERS)):
        if (s, u) in seen:
            continue
        seen.add((s, u))
        firsts = [p[2] for p in pref if (p[0], p[1]) == (s, u)]
        yield s, u, firsts + [x for x in USERS2 if x not in firsts]


# --------------------------------------------------------------------------------------------------------------------
# Goldens for one fixture
# --------------------------------------------------------------------------------------------------------------------


class Goldens:
    def __init__(self):
        self.t: dict[str, torch.Tensor] = OrderedDict()
        self.desc: dict[str, str] = OrderedDict()

    def add(self, name: str, t: torch.Tensor, desc: str) -> None:
        t = t.detach().cpu()
        t = t.to(torch.float32) if t.is_floating_point() else t.to(torch.int32)
        self.t[name] = t.contiguous().clone()
        self.desc[name] = desc


def ids_of(proc, s: str) -> list[int]:
    return list(proc.text.encode(s, add_special_tokens=False))


@torch.no_grad()
def fixture_goldens(fxn: str, search: bool, log) -> tuple[Goldens, dict]:
    from liquid_audio import LFM2AudioModel, LFM2AudioProcessor

    model_dir = REPO / "Tests/Fixtures" / fxn / "model"
    proc = LFM2AudioProcessor.from_pretrained(model_dir, device="cpu").eval()
    model = LFM2AudioModel.from_pretrained(model_dir, dtype=torch.float32, device="cpu").eval()
    assert model.lfm.config._attn_implementation == "sdpa"
    want = FIXTURE_SPEC[fxn]["want_stop"]
    rec = TextRecorder(model)

    rejected: list[dict] = []
    found = []
    n_rejected_first = 0
    for system, user, users2 in candidates(fxn):
        try:
            r1 = greedy_text_run(model, new_chat(proc, system, user), STEPS1, rec)
            check_run(r1, MIN_STEPS1, want, "turn 1")
        except Rejected as e:
            rejected.append(OrderedDict(system=system, user=user, reason=str(e)))
            continue
        hist = r1["tokens"][:-1] if r1["stop"] == "im_end" else r1["tokens"]
        for user2 in users2:
            try:
                r2 = greedy_text_run(model, second_turn(new_chat(proc, system, user), hist, user2), STEPS2, rec)
                check_run(r2, MIN_STEPS2, None, "turn 2")
            except Rejected as e:
                rejected.append(OrderedDict(system=system, user=user, user2=user2, reason=str(e)))
                continue
            if not found:
                n_rejected_first = len(rejected)
            found.append((system, user, user2, r1, r2))
            if not search:
                break
        if found and not search:
            break
    if search:
        for s, u, u2, r1, r2 in found:
            log(
                f"{fxn} search: {(s, u, u2)} L {len(new_chat(proc, s, u)['text'][0])} turn1 {len(r1['tokens'])} "
                f"({r1['stop']}, min margin "
                f"{min(r1['margins']):.3g}), turn2 {len(r2['tokens'])} ({r2['stop']}, {min(r2['margins']):.3g})"
            )
        log(f"{fxn} search: {len(found)} acceptable, {len(rejected)} rejected")
    if not found:
        raise SystemExit(f"{fxn}: no acceptable prompt")
    system, user, user2, r1, r2 = found[0]
    log(
        f"{fxn}: SYSTEM {system!r} USER {user!r} USER2 {user2!r}; turn 1: {len(r1['tokens'])} tokens, "
        f"{r1['stop']}; turn 2: {len(r2['tokens'])} tokens, {r2['stop']} "
        f"({n_rejected_first} candidates rejected first)"
    )

    # ---------------------------------------------------------------- turn 1 goldens
    G = Goldens()
    checks = OrderedDict()
    chat = new_chat(proc, system, user)
    L = chat["text"].shape[1]
    assert torch.equal(chat["modality_flag"], torch.ones_like(chat["modality_flag"]))
    G.add(
        "t.text_ids",
        chat["text"],
        "[1, L] prompt token ids (ChatState: each piece tokenized separately with "
        "add_special_tokens=False); every position is TEXT (modality 1)",
    )
    in_emb = model._prefill(**chat)
    checks["in_emb_equals_embed_tokens_rows"] = bool(
        torch.equal(in_emb[0], model.lfm.embed_tokens.weight[chat["text"][0]])
    )
    G.add("t.in_emb", in_emb, "[1, L, H] LFM2AudioModel._prefill output (= lfm.embed_tokens rows of t.text_ids)")
    out = model.lfm(inputs_embeds=in_emb, use_cache=False, output_hidden_states=True)
    hs = torch.stack([h[0] for h in out.hidden_states])
    last = out.last_hidden_state
    G.add(
        "t.hidden_states",
        hs,
        "[n_layers + 1, L, H] Lfm2Model hidden_states (transformers 5.24): [0] = in_emb, "
        "[i] = output of layer i-1, last entry = output of the last layer AFTER the final norm (= t.last_hidden)",
    )
    G.add("t.last_hidden", last, "[1, L, H] last_hidden_state (final-normed), full prefill with use_cache=False")
    checks["hidden_states_last_equals_last_hidden"] = bool(torch.equal(hs[-1], last[0]))
    checks["hidden_states_0_equals_in_emb"] = bool(torch.equal(hs[0], in_emb[0]))
    G.add(
        "t.step_logits",
        r1["logits"],
        f"[n1, V] text logits of every greedy step of generate_sequential "
        f"(max_new_tokens={STEPS1}), exactly as the reference computes them: F.linear(last_hidden[0, -1], "
        f"lfm.embed_tokens.weight) in float32, with the reference's KV/conv cache (step 0 = prefill)",
    )
    G.add(
        "t.tokens",
        torch.tensor(r1["tokens"]),
        "[n1] greedy tokens yielded by generate_sequential (argmax of each "
        "t.step_logits row; a final 7 = <|im_end|> is yielded, then generation stops)",
    )
    logits0_full = F.linear(last[0, -1], model.lfm.embed_tokens.weight)
    checks["step0_logits_vs_use_cache_false_prefill_max_abs"] = float((logits0_full - r1["logits"][0]).abs().max())
    # full re-prefill of prompt + generated tokens vs the cached steps
    ids_full = torch.cat([chat["text"][0], torch.tensor(r1["tokens"][:-1], dtype=torch.long)])
    lh = model.lfm(inputs_embeds=model.lfm.embed_tokens(ids_full)[None], use_cache=False).last_hidden_state[0]
    relog = F.linear(lh[L - 1 :], model.lfm.embed_tokens.weight)
    checks["turn1_cached_steps_vs_full_reprefill_logits_max_abs"] = float((relog - r1["logits"]).abs().max())
    checks["turn1_full_reprefill_argmax_equal"] = relog.argmax(-1).tolist() == r1["tokens"]

    # ---------------------------------------------------------------- turn 2 goldens
    hist = r1["tokens"][:-1] if r1["stop"] == "im_end" else r1["tokens"]
    chat2 = second_turn(new_chat(proc, system, user), hist, user2)
    L2 = chat2["text"].shape[1]
    G.add(
        "t2.text_ids",
        chat2["text"],
        "[1, L2] full history ids the reference re-prefills for turn 2: t.text_ids, "
        "the turn-1 answer (appended with ChatState.append), end_turn() '<|im_end|>\\n', '<|im_start|>user\\n', "
        "USER2, '<|im_end|>\\n', '<|im_start|>assistant\\n'",
    )
    G.add(
        "t2.step_logits",
        r2["logits"],
        f"[n2, V] text logits of every greedy step of turn 2 (generate_sequential "
        f"on the re-prefilled history, max_new_tokens={STEPS2})",
    )
    G.add("t2.tokens", torch.tensor(r2["tokens"]), "[n2] greedy tokens of turn 2")
    t2_ids = chat2["text"][0].tolist()
    expect_prefix = chat["text"][0].tolist() + r1["tokens"]
    if r1["stop"] == "im_end":
        checks["t2_history_equals_prompt_plus_turn1_tokens_plus_newline"] = t2_ids[
            : len(expect_prefix) + 1
        ] == expect_prefix + ids_of(proc, "\n")
    else:
        checks["t2_history_equals_prompt_plus_turn1_tokens_plus_im_end_newline"] = t2_ids[
            : len(expect_prefix) + 2
        ] == expect_prefix + ids_of(proc, "<|im_end|>\n")

    # continuing from the cache (what the Swift runtime does) vs the reference's full re-prefill
    n_fed = L + len(r1["tokens"]) - 1  # positions in the cache after turn 1 (the last token was sampled, not fed)
    cont = continue_from_cache(model, chat2["text"][0], L, n_fed, STEPS2)
    checks["turn2_cache_continuation_tokens_equal"] = cont["tokens"] == r2["tokens"]
    checks["turn2_cache_continuation_logits_max_abs"] = float((cont["logits"] - r2["logits"]).abs().max())
    checks["turn2_cache_continuation_feed"] = (
        f"prefill t.text_ids ({L} positions) with use_cache, feed t.tokens[:-1] "
        f"one at a time ({n_fed} positions, the cache turn 1 left), then feed "
        f"t2.text_ids[{n_fed}:] ({L2 - n_fed} tokens) as one chunk, then greedy "
        f"steps; compared with t2.step_logits / t2.tokens (full re-prefill)"
    )

    rec.remove()
    info = OrderedDict(
        prompts=OrderedDict(system=system, user=user, user2=user2),
        want_stop=want,
        candidates_rejected_before=n_rejected_first,
        rejected_first=rejected[: min(3, n_rejected_first)],
        L=L,
        L2=L2,
        turn1=run_json(proc, r1, STEPS1),
        turn2=run_json(proc, r2, STEPS2),
        history_rule=(
            "turn 1 stopped with <|im_end|>: the appended answer is t.tokens[:-1] (without the final 7) and "
            "end_turn() adds '<|im_end|>\\n', so the history holds the generated <|im_end|> once, then "
            "'\\n'. Appending the yielded 7 as well would give '<|im_end|><|im_end|>\\n'."
            if r1["stop"] == "im_end"
            else "turn 1 stopped at max_new_tokens: the appended answer is all of t.tokens, then end_turn() adds "
            "'<|im_end|>\\n'."
        ),
        cache_continuation=OrderedDict(
            positions_after_turn1=n_fed,
            feed_ids=t2_ids[n_fed:],
            note="a runtime that keeps its KV/conv cache after turn 1 holds t.text_ids + t.tokens[:-1]; it feeds "
            "t2.text_ids[positions_after_turn1:] (starting with the last turn-1 token, which was sampled but "
            "not fed) and must then reproduce t2.step_logits / t2.tokens",
        ),
        checks=checks,
        model=OrderedDict(
            hidden=int(model.lfm.config.hidden_size),
            layers=len(model.lfm.layers),
            layer_types=list(model.lfm.config.layer_types),
            vocab=int(model.lfm.config.vocab_size),
            attn_implementation=model.lfm.config._attn_implementation,
        ),
        piece_ids=OrderedDict(
            (p, ids_of(proc, p))
            for p in [
                "<|startoftext|>",
                "<|im_start|>system\n",
                system,
                "<|im_end|>\n",
                "<|im_start|>user\n",
                user,
                "<|im_start|>assistant\n",
                user2,
            ]
        ),
        proc=proc,
        model_obj=model,
    )
    return G, info


@torch.no_grad()
def continue_from_cache(model, ids: torch.Tensor, L: int, n_fed: int, steps: int) -> dict:
    """The cache a runtime holds after turn 1, built with the same calls generate_sequential makes (prefill ids[:L],
    then one position per generated token up to ids[:n_fed]); then ids[n_fed:] fed as ONE chunk on that cache, then
    greedy decode token by token."""
    E = model.lfm.embed_tokens
    out = model.lfm(inputs_embeds=E(ids[:L])[None], past_key_values=None, use_cache=True)
    cache = out.past_key_values
    for i in range(L, n_fed):
        out = model.lfm(inputs_embeds=E(ids[i : i + 1])[None], past_key_values=cache, use_cache=True)
        cache = out.past_key_values
    inp = E(ids[n_fed:])[None]
    tokens, logits = [], []
    for _ in range(steps):
        out = model.lfm(inputs_embeds=inp, past_key_values=cache, use_cache=True)
        cache = out.past_key_values
        lg = F.linear(out.last_hidden_state[0, -1], E.weight)
        t = int(lg.argmax())
        tokens.append(t)
        logits.append(lg)
        if t in (IM_END, AUDIO_START):
            break
        inp = E(torch.tensor([t]))[None]
    return dict(tokens=tokens, logits=torch.stack(logits))


def run_json(proc, r: dict, steps: int) -> dict:
    return OrderedDict(
        max_new_tokens=steps,
        n_tokens=len(r["tokens"]),
        stop=r["stop"],
        stop_detail={
            "im_end": f"<|im_end|> (7) yielded at step {len(r['tokens']) - 1}; generate_sequential breaks",
            "max_new_tokens": f"all {steps} steps were text; max_new_tokens reached",
        }[r["stop"]],
        tokens=r["tokens"],
        token_strings=proc.text.convert_ids_to_tokens(r["tokens"]),
        text=proc.text.decode(r["tokens"], skip_special_tokens=False),
        margins=r["margins"],
        min_margin=min(r["margins"]),
        min_margin_step=r["margins"].index(min(r["margins"])),
    )


# --------------------------------------------------------------------------------------------------------------------
# Sampling semantics (recorded, not a stream)
# --------------------------------------------------------------------------------------------------------------------


def sampling_semantics(model) -> dict:
    from liquid_audio.model.lfm2_audio import LFM2AudioModel

    src = inspect.getsource(LFM2AudioModel._sample_text_token)
    gen_src = inspect.getsource(LFM2AudioModel.generate_sequential)
    call = [ln.strip() for ln in gen_src.splitlines() if "_sample_text_token(" in ln or "text_logits =" in ln]
    # the tie rule, demonstrated on the reference function itself
    demo_logits = torch.tensor([1.0, 3.0, 2.0, 2.0, 0.5, 2.0])
    kept = []
    orig_mn = torch.multinomial

    def spy(probs, n, **kw):
        kept.append(probs.clone())
        return orig_mn(probs, n, **kw)

    torch.multinomial = spy
    try:
        torch.manual_seed(0)
        model._sample_text_token(demo_logits.clone(), temperature=0.8, top_k=2)
    finally:
        torch.multinomial = orig_mn
    probs = kept[0]
    xs = torch.randn(1_000_000, generator=torch.Generator().manual_seed(0)) * 10
    ys = xs.clone()
    ys /= 0.8
    div_exact = bool(torch.equal(ys, torch.from_numpy(xs.numpy() / np.float32(0.8))))
    assert div_exact
    # a seeded draw with the brief's settings, informational only (torch's RNG stream is not reproducible elsewhere)
    g_logits = torch.linspace(-2.0, 2.0, 16)
    torch.manual_seed(1234)
    draws = [int(model._sample_text_token(g_logits.clone(), temperature=0.8, top_k=10)) for _ in range(8)]
    return OrderedDict(
        division_equals_float32_division=div_exact,
        settings="text_temperature=0.8, text_top_k=10, torch.manual_seed(seed) before generation (no stream recorded)",
        source_file="liquid_audio/model/lfm2_audio.py (liquid-audio 1.3.0)",
        sample_text_token_source=src,
        called_from_generate_sequential=call,
        rules=[
            "greedy when temperature is None, or temperature <= 0, or top_k == 1: logits.argmax(keepdim=True) "
            "(torch.argmax returns the first index of the maximum); top_k is ignored then",
            "otherwise temperature must be a Python float > 0 (an int fails the assert); logits /= temperature is "
            "IN PLACE on the caller's tensor (text_logits is not used afterwards, so it is harmless); on CPU the "
            "float32 result equals logits / float32(temperature) bit for bit (checked here on 1e6 values; it is not "
            "the multiplication by float32(1 / temperature), nor a float64 division rounded)",
            "top-k: min_score = torch.topk(logits, top_k).values[-1] (the k-th largest scaled logit); every logit "
            "strictly below min_score is set to -inf with masked_fill; logits EQUAL to min_score are all kept, so "
            "ties at the threshold can leave more than k candidates; top_k=None means no truncation; top_k > vocab "
            "raises in torch.topk",
            "probs = softmax over the full vocabulary of the scaled, masked logits (float32; -inf -> probability 0)",
            "next_token = torch.multinomial(probs, 1) with torch's global CPU generator (seeded by "
            "torch.manual_seed); shape [1], int64",
            "temperature is applied before top-k; both come from generate_sequential's text_temperature/text_top_k "
            "(defaults None = greedy); _sample_audio_frame applies the same rule per codebook with "
            "audio_temperature/audio_top_k",
        ],
        tie_rule_demo=OrderedDict(
            logits=demo_logits.tolist(),
            temperature=0.8,
            top_k=2,
            threshold=float(torch.topk(demo_logits / 0.8, 2).values[-1]),
            probs_passed_to_multinomial=probs.tolist(),
            kept_ids=[i for i, p in enumerate(probs.tolist()) if p > 0],
            note="k = 2 but 4 ids survive: 3.0 and the three logits tied at the threshold 2.0",
        ),
        seeded_draws_demo=OrderedDict(
            logits="torch.linspace(-2, 2, 16)",
            temperature=0.8,
            top_k=10,
            seed=1234,
            draws=draws,
            note="8 successive calls after torch.manual_seed(1234); informational only",
        ),
    )


# --------------------------------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------------------------------


def compact_json(obj, indent: int = 0) -> str:
    """Indented JSON with lists of scalars kept on one line."""
    pad, pad1 = " " * indent, " " * (indent + 2)
    if isinstance(obj, dict):
        if not obj:
            return "{}"
        items = [f"{pad1}{json.dumps(k, ensure_ascii=False)}: {compact_json(v, indent + 2)}" for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(obj, (list, tuple)):
        if all(not isinstance(v, (dict, list, tuple)) for v in obj):
            return json.dumps(list(obj), ensure_ascii=False)
        return "[\n" + ",\n".join(pad1 + compact_json(v, indent + 2) for v in obj) + "\n" + pad + "]"
    return json.dumps(obj, ensure_ascii=False)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=REPO / "Tests/Fixtures/text")
    ap.add_argument(
        "--search",
        action="store_true",
        help="try every candidate and list the acceptable ones " "(the goldens still use the first acceptable one)",
    )
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    t0 = time.perf_counter()

    def log(msg: str) -> None:
        print(f"[text-goldens {time.perf_counter() - t0:6.2f}s] {msg}", flush=True)

    args.out.mkdir(parents=True, exist_ok=True)
    fixtures_info = OrderedDict()
    goldens_json = OrderedDict()
    semantics = None
    for fxn in ("tiny-a", "tiny-b"):
        G, info = fixture_goldens(fxn, args.search, log)
        path = args.out / f"{fxn}.safetensors"
        save_file(G.t, str(path), metadata={"format": "pt"})
        path.chmod(0o644)
        if semantics is None:
            semantics = sampling_semantics(info["model_obj"])
        del info["proc"], info["model_obj"]
        fixtures_info[fxn] = info
        goldens_json[fxn] = OrderedDict(
            (k, OrderedDict(shape=list(t.shape), dtype=fx.dtype_name(t), description=G.desc[k])) for k, t in G.t.items()
        )
        log(f"{fxn}: wrote {path.name} ({path.stat().st_size} bytes)")

    tok_dir = REPO / "Tests/Fixtures/tokenizer"
    files = [
        OrderedDict(path=f"text/{r['path']}", bytes=r["bytes"], sha256=r["sha256"]) for r in fx.file_table(args.out)
    ]
    files += (
        [
            OrderedDict(path=f"tokenizer/{r['path']}", bytes=r["bytes"], sha256=r["sha256"])
            for r in fx.file_table(tok_dir, exclude=())
        ]
        if tok_dir.exists()
        else []
    )
    manifest = OrderedDict(
        generator="scripts/reference/make_text_goldens.py (library scripts/reference/fixtures.py)",
        command="python scripts/reference/make_text_goldens.py --out DIR",
        tokenizer_generator="scripts/reference/make_tokenizer_goldens.py (Tests/Fixtures/tokenizer; listed in files)",
        versions=fx.versions(),
        numerics=OrderedDict((k, v) for k, v in fx.NUMERICS.items() if k not in ("weights",)),
        checkpoints={
            f: f"Tests/Fixtures/{f}/model (model.safetensors sha256 "
            f"{fx.sha256_file(REPO / 'Tests/Fixtures' / f / 'model/model.safetensors')})"
            for f in ("tiny-a", "tiny-b")
        },
        selection=OrderedDict(
            rule=f"no steering: (SYSTEM, USER) candidates in a fixed order (the offline-searched triple first, then "
            f"the grid SYSTEMS x USERS), USER2 from USERS2; accept when turn 1 is all text with >= {MIN_STEPS1} "
            f"tokens and the fixture's stop reason, turn 2 all text with >= {MIN_STEPS2} tokens, and every "
            f"greedy decision of both turns has a top-2 margin >= {MIN_MARGIN}",
            steps_turn1=STEPS1,
            steps_turn2=STEPS2,
            min_margin=MIN_MARGIN,
            grid=OrderedDict(systems=SYSTEMS, users=USERS, users2=USERS2),
        ),
        fixtures=fixtures_info,
        sampling=semantics,
        goldens=goldens_json,
        files=files,
    )
    (args.out / "manifest.json").write_text(compact_json(manifest) + "\n", encoding="utf-8")
    total = sum(p.stat().st_size for d in (args.out, tok_dir) if d.exists() for p in d.rglob("*") if p.is_file())
    log(f"done: text + tokenizer folders {total} bytes")


if __name__ == "__main__":
    main()
