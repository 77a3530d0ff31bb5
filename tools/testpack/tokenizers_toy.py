"""Toy CLIP (byte-level BPE) and T5 (SentencePiece-style Unigram) tokenizers with the real
`tokenizer.json` structure, trained deterministically on an embedded caption corpus.

Also contains small pure-Python encoders that follow the HF `tokenizers` semantics; build.py
compares them with @huggingface/tokenizers as an independent check.
"""
from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from typing import Dict, List, Tuple

CLIP_BOS = "<|startoftext|>"
CLIP_EOS = "<|endoftext|>"
CLIP_SPLIT_REGEX = r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""
CLIP_NUM_MERGES = 1500
T5_NUM_EXTRA_IDS = 100
T5_TARGET_PIECES = 1397  # + 3 specials + 100 extra ids = 1500

# ----------------------------------------------------------------------------------------------
# corpus: hand-written captions + deterministic template sentences from embedded word lists
# ----------------------------------------------------------------------------------------------

CAPTIONS = """
a photo of a cat sitting on a red sofa in a sunny living room.
a watercolor painting of a lighthouse on a rocky coast at sunset, soft pastel colors.
an astronaut riding a horse on the surface of the moon, highly detailed, digital art.
a bowl of ramen with a soft boiled egg, green onions and chili oil, food photography.
a cozy cabin in a snowy pine forest at night, warm light glowing from the windows.
portrait of an old fisherman with a grey beard, dramatic lighting, 85mm lens, bokeh.
a futuristic city skyline with flying cars and neon signs, cyberpunk, rainy streets.
a small robot watering plants in a greenhouse, cute, pixar style, 3d render.
an oil painting of a field of sunflowers under a stormy sky, thick brush strokes.
a golden retriever puppy playing in autumn leaves, shallow depth of field.
a minimalist logo of a mountain and a river, flat vector, blue and white.
the ruins of an ancient temple overgrown with vines, misty jungle, cinematic.
a steaming cup of coffee on a wooden table next to an open book, morning light.
a dragon made of crystal flying over a frozen lake, fantasy concept art.
a street market in marrakech full of spices, lanterns and colorful fabrics.
a macro photograph of a dew drop on a spider web, sharp focus, 4k.
an isometric illustration of a tiny island with a windmill and a harbor.
a knight in shining armor standing in front of a castle gate, epic composition.
a bicycle leaning against a brick wall covered in ivy, film grain, 35mm.
a jellyfish glowing in the deep ocean, bioluminescent, dark blue background.
it's a beautiful day in the park; children are flying kites and dogs are running.
they're walking along the beach at dawn, we've never seen waves this tall.
i'm painting a still life with apples, pears, grapes and a silver jug.
the quick brown fox jumps over the lazy dog, 1920s poster, art deco typography.
a 1024x1024 wallpaper of abstract geometric shapes in teal, orange and cream.
an f/1.8 portrait shot at iso 100, 1/250 s, natural light, canon eos r5.
a vintage car parked outside a diner in 1957, route 66, kodachrome.
close-up of a hummingbird drinking nectar from a pink flower, high speed photo.
a library with endless shelves of books and spiral staircases, magical atmosphere.
a bowl of fresh fruit: strawberries, blueberries, kiwi & mango slices!
a snowy mountain peak reflected in a calm alpine lake, long exposure, 8k uhd.
a hand-drawn map of a fantasy kingdom with rivers, forests, and three cities.
a black and white photo of a jazz musician playing the saxophone on stage.
a cute corgi wearing sunglasses and a tiny hat, studio photo, colorful backdrop.
an underwater coral reef with clownfish, sea turtles and rays of sunlight.
a medieval village at dusk with smoke rising from the chimneys, oil on canvas.
a neon sign that says "open 24 hours" in a rainy alley, reflections on the wet ground.
a plate of sushi on a slate board, chopsticks, soy sauce, wasabi, top-down view.
a paper boat floating in a puddle after the rain, shallow focus, muted tones.
a tree house in a giant oak tree with rope bridges and lanterns, storybook style.
"""

_SUBJECTS = """cat dog fox owl horse rabbit bear wolf deer lion tiger eagle whale dolphin turtle frog
butterfly bee dragon unicorn robot astronaut knight wizard princess pirate samurai ninja monk sailor farmer
child woman man girl boy grandmother musician painter dancer chef scientist explorer soldier queen king
castle tower bridge lighthouse cabin cottage temple palace cathedral skyscraper windmill harbor village city
mountain river lake forest desert island volcano canyon waterfall glacier meadow valley beach ocean garden
flower rose tulip orchid lotus cactus mushroom tree oak willow pine bamboo fern vine leaf apple pear lemon
orange cherry strawberry grape peach melon pumpkin bread cake pie cookie coffee tea wine soup noodle pizza
car truck train bicycle motorcycle airplane ship boat balloon rocket spaceship submarine tram bus tractor
book lamp chair table clock mirror window door staircase candle lantern guitar piano violin drum trumpet
crown sword shield helmet armor cloak hat scarf dress jacket boots umbrella backpack camera telescope""".split()

_ADJECTIVES = """red orange yellow green blue purple pink white black grey golden silver bronze copper
crimson scarlet emerald turquoise violet ivory amber teal navy beige pastel vibrant muted dark bright
glowing shiny rusty ancient modern futuristic tiny huge giant small little big tall old young happy
sad angry calm peaceful lonely mysterious magical enchanted haunted abandoned ruined cozy warm cold frozen
snowy rainy foggy misty stormy sunny cloudy windy wet dry dusty sandy rocky grassy wooden metallic glass
crystal stone marble paper plastic velvet silk leather furry fluffy soft sharp smooth rough wrinkled
elegant ornate simple minimalist detailed intricate colorful monochrome surreal realistic whimsical
dreamy gloomy cheerful majestic humble fierce gentle curious sleepy playful proud""".split()

_VERBS = """sitting standing walking running flying swimming dancing singing reading writing painting
sleeping dreaming floating falling climbing riding jumping playing cooking eating drinking laughing
smiling crying watching waiting fishing sailing driving building exploring hiding glowing burning
melting growing blooming shining reflecting""".split()

_PLACES = """on a hill, in a forest, by the sea, under the stars, in the rain, at sunset, at sunrise,
at night, in the snow, in a field, on the moon, on mars, in space, in a city street, in a small kitchen,
in a library, in a museum, in a cave, under water, in the clouds, on a rooftop, in a train station,
in a garden, in the desert, on a boat, near a river, in a dark room, in a flower shop, at a market,
in the mountains, on an island, in a castle hall, in a neon alley, in a quiet temple""".replace("\n", " ").split(",")

_STYLES = """photograph, oil painting, watercolor, pencil sketch, charcoal drawing, digital art, 3d render,
concept art, pixel art, anime style, studio ghibli style, comic book style, art nouveau, art deco,
impressionism, cubism, surrealism, pop art, ukiyo-e woodblock print, stained glass, mosaic, embroidery,
claymation, low poly, vector illustration, children's book illustration, cinematic still, film photo,
polaroid, tilt-shift photo, long exposure, macro photo, aerial view, isometric view, portrait, landscape,
close-up, wide angle, fisheye lens, telephoto lens, soft lighting, dramatic lighting, rim light,
volumetric light, golden hour, blue hour, high contrast, low key, high key, bokeh, sharp focus,
highly detailed, trending on artstation, unreal engine, octane render, ray tracing, 4k, 8k, hdr,
masterpiece, best quality, award winning, national geographic, vogue cover, album cover, movie poster,
postcard, book cover, tarot card, sticker, emoji, icon, logo, tattoo design, blueprint, infographic""".replace("\n", " ").split(",")

_EXTRA_WORDS = """the of and with a an in on at by from into over under between behind beside near
above below through across around without within inside outside toward is are was were be been being
has have had it its this that these those there here what which who whom whose when where why how
very quite rather really extremely slightly almost nearly many much more most few less least some
any every each both either neither one two three four five six seven eight nine ten hundred thousand
first second third last next other another same different new large great good best better little
long short high low wide narrow deep shallow heavy light early late fast slow loud quiet clean dirty
full empty open closed inside free busy strange beautiful wonderful terrible lovely pretty ugly
people person family friends group crowd team couple children animals birds fish insects plants
sky sun moon star stars cloud clouds wind rain snow fog storm lightning thunder fire smoke water ice
light shadow shadows color colors shape shapes pattern patterns texture textures background foreground
scene view picture image photo painting drawing style detail details atmosphere mood composition
morning evening afternoon midnight dawn dusk spring summer autumn winter season weather holiday festival
""".split()

_SPECIAL_TOKENS_TEXT = "it's don't can't won't isn't they're we're you're i'm i've we've she'll he'd let's"


class _Lcg:
    """Tiny deterministic RNG (numerical recipes LCG) so the corpus never depends on Python's random."""

    def __init__(self, seed: int):
        self.state = seed & 0xFFFFFFFF

    def next(self) -> int:
        self.state = (1664525 * self.state + 1013904223) & 0xFFFFFFFF
        return self.state >> 8

    def choice(self, seq):
        return seq[self.next() % len(seq)]


def build_corpus() -> str:
    rng = _Lcg(20240601)
    lines = [ln.strip() for ln in CAPTIONS.strip().splitlines() if ln.strip()]
    places = [p.strip() for p in _PLACES if p.strip()]
    styles = [s.strip() for s in _STYLES if s.strip()]
    for i in range(1400):
        form = i % 5
        a, b = rng.choice(_ADJECTIVES), rng.choice(_ADJECTIVES)
        s1, s2 = rng.choice(_SUBJECTS), rng.choice(_SUBJECTS)
        v, p, st = rng.choice(_VERBS), rng.choice(places), rng.choice(styles)
        e1, e2, e3 = rng.choice(_EXTRA_WORDS), rng.choice(_EXTRA_WORDS), rng.choice(_EXTRA_WORDS)
        if form == 0:
            lines.append(f"a {a} {s1} {v} {p}, {st}.")
        elif form == 1:
            lines.append(f"an image of the {b} {s2} and a {a} {s1}, {e1} {e2} {e3}, {st}")
        elif form == 2:
            lines.append(f"{st} of a {s1} {v} with a {s2} {p}; {e1} {e2} {e3}.")
        elif form == 3:
            lines.append(f"the {a} {s1} is {v} {p} while {e1} {e2} {e3} {b} {s2} {v}.")
        else:
            lines.append(f"{a} {s1}, {b} {s2}, {st}, {rng.next() % 2048} {e1} {e2}!")
    for w in _SUBJECTS + _ADJECTIVES + _VERBS + _EXTRA_WORDS:  # every listed word at least a few times
        lines.append(f"{w} {w}s {w}.")
    lines.append(_SPECIAL_TOKENS_TEXT)
    lines.append("0 1 2 3 4 5 6 7 8 9 10 16 24 32 64 128 256 512 768 1024 1080 1920 2048 4096")
    lines.append("! \" # $ % & ' ( ) * + , - . / : ; < = > ? @ [ \\ ] ^ _ ` { | } ~")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------------------------
# CLIP: byte-level BPE with </w>
# ----------------------------------------------------------------------------------------------


def bytes_to_unicode() -> Dict[int, str]:
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


BYTE_ENCODER = bytes_to_unicode()


def _is_letter(ch: str) -> bool:
    return unicodedata.category(ch).startswith("L")


def _is_number(ch: str) -> bool:
    return unicodedata.category(ch).startswith("N")


def clip_normalize(text: str) -> str:
    text = unicodedata.normalize("NFC", text)
    text = re.sub(r"\s+", " ", text)
    return text.lower()


def clip_split(text: str) -> List[str]:
    """The CLIP pre-tokenizer regex (matches kept, gaps removed)."""
    out: List[str] = []
    i, n = 0, len(text)
    while i < n:
        rest = text[i:]
        for sp in (CLIP_BOS, CLIP_EOS, "'s", "'t", "'re", "'ve", "'m", "'ll", "'d"):
            if rest.startswith(sp):
                out.append(sp)
                i += len(sp)
                break
        else:
            ch = text[i]
            if _is_letter(ch):
                j = i
                while j < n and _is_letter(text[j]):
                    j += 1
                out.append(text[i:j])
                i = j
            elif _is_number(ch):
                out.append(ch)
                i += 1
            elif ch.isspace():
                i += 1
            else:
                j = i
                while j < n and not (text[j].isspace() or _is_letter(text[j]) or _is_number(text[j])):
                    j += 1
                out.append(text[i:j])
                i = j
    return out


def clip_pretokenize(text: str) -> List[str]:
    return ["".join(BYTE_ENCODER[b] for b in w.encode("utf-8")) for w in clip_split(clip_normalize(text))]


def train_clip_bpe(corpus: str, num_merges: int) -> List[Tuple[str, str]]:
    counts = Counter()
    for line in corpus.splitlines():
        counts.update(clip_pretokenize(line))
    words = [(list(w[:-1]) + [w[-1] + "</w>"], c) for w, c in sorted(counts.items())]
    merges: List[Tuple[str, str]] = []
    for _ in range(num_merges):
        pairs: Counter = Counter()
        for syms, c in words:
            for a, b in zip(syms, syms[1:]):
                pairs[(a, b)] += c
        if not pairs:
            break
        best = min(pairs.items(), key=lambda kv: (-kv[1], kv[0]))
        (a, b), cnt = best
        if cnt < 2:
            break
        merges.append((a, b))
        ab = a + b
        new_words = []
        for syms, c in words:
            if len(syms) > 1:
                out, i = [], 0
                while i < len(syms):
                    if i + 1 < len(syms) and syms[i] == a and syms[i + 1] == b:
                        out.append(ab)
                        i += 2
                    else:
                        out.append(syms[i])
                        i += 1
                syms = out
            new_words.append((syms, c))
        words = new_words
    return merges


def clip_vocab(merges: List[Tuple[str, str]]) -> Dict[str, int]:
    base = list(BYTE_ENCODER.values())
    vocab: Dict[str, int] = {}
    for t in base + [t + "</w>" for t in base] + [a + b for a, b in merges]:
        if t not in vocab:
            vocab[t] = len(vocab)
    vocab[CLIP_BOS] = len(vocab)
    vocab[CLIP_EOS] = len(vocab)
    return vocab


def clip_tokenizer_json(vocab: Dict[str, int], merges: List[Tuple[str, str]]) -> dict:
    bos, eos = vocab[CLIP_BOS], vocab[CLIP_EOS]

    def added(tid, content):
        return {"id": tid, "content": content, "single_word": False, "lstrip": False, "rstrip": False,
                "normalized": True, "special": True}

    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [added(bos, CLIP_BOS), added(eos, CLIP_EOS)],
        "normalizer": {"type": "Sequence", "normalizers": [
            {"type": "NFC"},
            {"type": "Replace", "pattern": {"Regex": "\\s+"}, "content": " "},
            {"type": "Lowercase"},
        ]},
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": CLIP_SPLIT_REGEX}, "behavior": "Removed", "invert": True},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False},
        ]},
        "post_processor": {"type": "RobertaProcessing", "sep": [CLIP_EOS, eos], "cls": [CLIP_BOS, bos],
                           "trim_offsets": False, "add_prefix_space": False},
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {
            "type": "BPE", "dropout": None, "unk_token": CLIP_EOS, "continuing_subword_prefix": "",
            "end_of_word_suffix": "</w>", "fuse_unk": False, "byte_fallback": False,
            "vocab": vocab,
            "merges": [f"{a} {b}" for a, b in merges],
        },
    }


def clip_tokenizer_config() -> dict:
    tok = lambda c: {"__type": "AddedToken", "content": c, "lstrip": False, "normalized": True, "rstrip": False,
                     "single_word": False}
    return {
        "add_prefix_space": False,
        "bos_token": tok(CLIP_BOS),
        "clean_up_tokenization_spaces": True,
        "do_lower_case": True,
        "eos_token": tok(CLIP_EOS),
        "errors": "replace",
        "model_max_length": 77,
        "pad_token": CLIP_EOS,
        "tokenizer_class": "CLIPTokenizer",
        "unk_token": tok(CLIP_EOS),
    }


def clip_encode(text: str, vocab: Dict[str, int], merges: List[Tuple[str, str]]) -> List[int]:
    """Raw ids (no BOS/EOS), classic rank-ordered BPE."""
    ranks = {m: i for i, m in enumerate(merges)}
    ids: List[int] = []
    # split out the special tokens first (added tokens), like HF
    parts = re.split(r"(<\|startoftext\|>|<\|endoftext\|>)", text)
    for part in parts:
        if part in (CLIP_BOS, CLIP_EOS):
            ids.append(vocab[part])
            continue
        for w in clip_pretokenize(part):
            syms = list(w[:-1]) + [w[-1] + "</w>"]
            while len(syms) > 1:
                cands = [(ranks.get((x, y), math.inf), i) for i, (x, y) in enumerate(zip(syms, syms[1:]))]
                r, _ = min(cands)
                if r == math.inf:
                    break
                a, b = merges[r]
                out, i = [], 0
                while i < len(syms):
                    if i + 1 < len(syms) and syms[i] == a and syms[i + 1] == b:
                        out.append(a + b)
                        i += 2
                    else:
                        out.append(syms[i])
                        i += 1
                syms = out
            ids.extend(vocab.get(s, vocab[CLIP_EOS]) for s in syms)
    return ids


# ----------------------------------------------------------------------------------------------
# T5: Unigram
# ----------------------------------------------------------------------------------------------

SPM = "\u2581"


def t5_normalize(text: str) -> str:
    return re.sub(" {2,}", " ", unicodedata.normalize("NFKC", text))


def t5_pretokenize(text: str) -> List[str]:
    return [w if w.startswith(SPM) else SPM + w for w in t5_normalize(text).split()]


def build_t5_vocab(corpus: str) -> List[Tuple[str, float]]:
    words = Counter()
    for line in corpus.splitlines():
        words.update(t5_pretokenize(line))
    # substring statistics over the "▁word" stream
    sub = Counter()
    for w, c in words.items():
        for i in range(len(w)):
            for j in range(i + 1, min(len(w), i + 8) + 1):
                sub[w[i:j]] += c
    chars = [chr(c) for c in range(0x21, 0x7F)]
    must = [SPM] + chars + [SPM + ch for ch in chars]
    chosen = dict.fromkeys(must)
    whole = sorted((w for w, c in words.items() if c >= 2 and len(w) > 2), key=lambda w: (-words[w], w))
    for w in whole[:700]:
        chosen.setdefault(w)
    rest = sorted((p for p, c in sub.items() if c >= 3 and 2 <= len(p) <= 6 and p not in chosen and SPM not in p[1:]),
                  key=lambda p: (-sub[p] * len(p), p))
    for p in rest:
        if len(chosen) >= T5_TARGET_PIECES:
            break
        chosen.setdefault(p)
    total = sum(sub[p] + 1 for p in chosen)
    scored = [(p, math.log((sub[p] + 1) / total)) for p in chosen]
    scored.sort(key=lambda ps: (-ps[1], ps[0]))
    # round scores so the JSON is stable and short
    return [(p, round(s, 6)) for p, s in scored]


def t5_full_vocab(pieces: List[Tuple[str, float]]) -> List[Tuple[str, float]]:
    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)] + pieces
    # like the real T5: <extra_id_99> ... <extra_id_0> fill the last 100 ids (extra_id_0 is the largest)
    vocab += [(f"<extra_id_{i}>", 0.0) for i in reversed(range(T5_NUM_EXTRA_IDS))]
    return vocab


def t5_tokenizer_json(vocab: List[Tuple[str, float]]) -> dict:
    def added(tid, content):
        return {"id": tid, "content": content, "single_word": False, "lstrip": False, "rstrip": False,
                "normalized": False, "special": True}

    added_tokens = [added(0, "<pad>"), added(1, "</s>"), added(2, "<unk>")]
    for tid, (p, _) in enumerate(vocab):
        if p.startswith("<extra_id_"):
            added_tokens.append(added(tid, p))
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added_tokens,
        # The real T5 uses {"type": "Precompiled", "precompiled_charsmap": ...} (SentencePiece's nmt_nfkc
        # tables); we use plain NFKC instead (see README).
        "normalizer": {"type": "Sequence", "normalizers": [
            {"type": "NFKC"},
            {"type": "Replace", "pattern": {"Regex": " {2,}"}, "content": " "},
        ]},
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "WhitespaceSplit"},
            {"type": "Metaspace", "replacement": SPM, "prepend_scheme": "always", "split": True},
        ]},
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": "</s>", "type_id": 0}}],
            "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": "</s>", "type_id": 0}},
                     {"Sequence": {"id": "B", "type_id": 0}}, {"SpecialToken": {"id": "</s>", "type_id": 0}}],
            "special_tokens": {"</s>": {"id": "</s>", "ids": [1], "tokens": ["</s>"]}},
        },
        "decoder": {"type": "Metaspace", "replacement": SPM, "prepend_scheme": "always", "split": True},
        "model": {"type": "Unigram", "unk_id": 2, "vocab": [[p, s] for p, s in vocab], "byte_fallback": False},
    }


def t5_tokenizer_config() -> dict:
    return {
        "additional_special_tokens": [f"<extra_id_{i}>" for i in range(T5_NUM_EXTRA_IDS)],
        "clean_up_tokenization_spaces": True,
        "eos_token": "</s>",
        "extra_ids": T5_NUM_EXTRA_IDS,
        "legacy": True,
        "model_max_length": 512,
        "pad_token": "<pad>",
        "sp_model_kwargs": {},
        "tokenizer_class": "T5Tokenizer",
        "unk_token": "<unk>",
    }


def t5_encode(text: str, vocab: List[Tuple[str, float]]) -> List[int]:
    """Raw ids (no </s>): Viterbi over the unigram lattice, unknown chars -> <unk> (fused)."""
    piece_id = {p: i for i, (p, _) in enumerate(vocab)}
    specials = {p for p, _ in vocab if p.startswith("<")}
    scores = [s for _, s in vocab]
    min_score = min(s for p, s in vocab)
    unk_score = min_score - 10.0
    maxlen = max(len(p) for p in piece_id)
    ids: List[int] = []
    parts = re.split(r"(<pad>|</s>|<unk>|<extra_id_\d+>)", text)
    for part in parts:
        if part in piece_id and part in specials:
            ids.append(piece_id[part])
            continue
        for w in t5_pretokenize(part):
            n = len(w)
            best = [-math.inf] * (n + 1)
            back: List[Tuple[int, int]] = [(-1, -1)] * (n + 1)
            best[0] = 0.0
            for i in range(n):
                if best[i] == -math.inf:
                    continue
                single = False
                for j in range(i + 1, min(n, i + maxlen) + 1):
                    p = w[i:j]
                    pid = piece_id.get(p)
                    if pid is None or p in specials:
                        continue
                    if j == i + 1:
                        single = True
                    sc = best[i] + scores[pid]
                    if sc > best[j]:
                        best[j], back[j] = sc, (i, pid)
                if not single:
                    sc = best[i] + unk_score
                    if sc > best[i + 1]:
                        best[i + 1], back[i + 1] = sc, (i, 2)
            seq, j = [], n
            while j > 0:
                i, pid = back[j]
                seq.append(pid)
                j = i
            seq.reverse()
            fused: List[int] = []
            for pid in seq:
                if pid == 2 and fused and fused[-1] == 2:
                    continue
                fused.append(pid)
            ids.extend(fused)
    return ids
