#!/usr/bin/env python3
"""Writes the tokenizer test fixtures in test/fixtures/tokenizer/ from the real `sentencepiece` library.

  python3 -m venv /tmp/tokvenv && /tmp/tokvenv/bin/pip install sentencepiece==0.2.2
  /tmp/tokvenv/bin/python reference/tokenizer_corpus.py [--model ../shared/reference/tokenizer.model]

Outputs (text and ids only; the model itself is never copied):
  corpus_ids.json   a deterministic mixed corpus (prose, Chinese, code, emoji, odd whitespace, special strings),
                    each line's ids under MiniCPM-V's LlamaTokenizerWrapper semantics, plus decode cases.
  tiny_*.model      two tiny BPE models trained here (one identity/no-dummy-prefix with byte fallback, one with
                    sentencepiece's default whitespace handling and no byte fallback), and tiny_models.json with
                    the ids/decodes of part of the corpus under each.

HF semantics re-stated (transformers 4.36, slow LlamaTokenizer, legacy=True; checked here against the golden cases):
  encode: split the text on the special strings (leftmost match, longest first), every other chunk goes to
          sp.encode(chunk) unchanged, then prepend bos.
  decode: tokens = pieces of the ids; drop one leading U+2581 of tokens[0]; runs of ordinary tokens go through
          sp.decode(pieces); a special token is appended as its string, preceded by " " when the token before it
          is not special.
"""
import argparse
import hashlib
import json
import os
import random
import sys

import sentencepiece as spm

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
OUT = os.path.join(REPO, "test", "fixtures", "tokenizer")
SEED = 20261126
WRAPPER_SPECIALS = ["<image>", "</image>", "<ref>", "</ref>", "<box>", "</box>", "<quad>", "</quad>"]
WS = "\u2581"


# ----------------------------------------------------------------------------- HF semantics, re-stated

def specials_of(sp):
    return [sp.id_to_piece(sp.unk_id()), sp.id_to_piece(sp.bos_id()), sp.id_to_piece(sp.eos_id())] + WRAPPER_SPECIALS


def split_specials(text, specials):
    """Leftmost special string, longest first (what HF's Trie.split does for these non-overlapping strings)."""
    by_len = sorted(specials, key=len, reverse=True)
    out, last, i = [], 0, 0
    while i < len(text):
        hit = next((s for s in by_len if text.startswith(s, i)), None)
        if hit is None:
            i += 1
            continue
        if i > last:
            out.append(text[last:i])
        out.append((hit,))
        i += len(hit)
        last = i
    if last < len(text):
        out.append(text[last:])
    return out


def hf_encode(sp, text):
    ids = [sp.bos_id()]
    for chunk in split_specials(text, specials_of(sp)):
        if isinstance(chunk, tuple):
            ids.append(sp.piece_to_id(chunk[0]))
        else:
            ids.extend(sp.encode(chunk))
    return ids


def hf_decode_436(sp, ids):
    specials = set(specials_of(sp))
    tokens = [sp.id_to_piece(i) for i in ids]
    if not tokens:
        return ""
    if tokens[0].startswith(WS):
        tokens[0] = tokens[0][1:]
    out, sub, prev_special = "", [], False
    for i, tok in enumerate(tokens):
        if tok in specials:
            if not prev_special and i != 0:
                out += " "
            out += sp.decode(sub) + tok
            sub, prev_special = [], True
        else:
            sub.append(tok)
            prev_special = False
    return out + sp.decode(sub)


# ----------------------------------------------------------------------------- corpus

PROSE = [
    "The lighthouse keeper wrote down the weather every morning, even on days when nothing changed at all.",
    "A small boat drifted past the harbour wall; its sail was patched in three places and faded to grey.",
    "Nobody could remember who had planted the orchard, but every autumn the village argued about the apples.",
    "She measured the room twice, then decided the piano would have to stay in the hallway after all.",
    "Trains were late again, so the station filled with people reading newspapers they had already finished.",
    "If the recipe calls for two eggs, use three; the extra one makes the cake lighter, or so my aunt insisted.",
    "Under the bridge, the river slowed down and became almost silent, as if it were listening to the traffic.",
    "The museum closed at five o'clock, which left exactly forty minutes to find the painting with the blue fox.",
    "He kept a list of words he liked: lantern, marmalade, quietly, threshold, and (for no clear reason) gravel.",
    "Children ran between the market stalls while the vendors shouted prices that changed every few minutes.",
    "What is in the image? Describe it briefly, then list every object you can see on the table.",
    "Q: How many windows does the building have?\nA: I count twelve on the front side, maybe more at the back.",
    "It's a photo of a cat sitting on a keyboard -- the classic way to stop someone from working.",
    "Dr. Smith's report (pp. 12-15) says the results were \"statistically significant\", which surprised everyone.",
]
WORDS = ("the of and to in is was for on that with as by at from this be are or an it not which have has had "
         "but were they their one all there can been if more when will would who so no about out up what into "
         "only time new some could these two may first then do any like my now over such our man me even most "
         "made after also did many before must through back years where much your way well down should because "
         "each just those people how too little state good very make world still own see men work long get here "
         "between both life being under never day same another know while last might us great old year off come "
         "since against go came right used take three small picture image camera window table chair street river "
         "mountain yellow purple orange bicycle umbrella telescope elephant giraffe penguin sandwich photograph "
         "reflection architecture microscope temperature approximately unfortunately extraordinary "
         "tokenization sentencepiece transformer multimodal resampler encoder attention").split()
CHINESE = [
    "这是一张在公园里拍的照片，照片里有两只小狗在草地上玩耍。",
    "请描述一下这幅图片的内容，并说明图中人物正在做什么。",
    "今天天气很好，我们打算下午去博物馆看看新的展览。",
    "图片中有一辆红色的自行车停在一棵大树旁边，树下还有一张长椅。",
    "他说：“这个问题其实并不难，只是需要多一点耐心。”",
    "北京、上海、广州和深圳是中国最大的几个城市。",
    "《红楼梦》是中国古典小说的巅峰之作，作者是曹雪芹。",
    "模型的输入包括一张图片和一段文字，输出是一段回答。",
    "【注意】请勿在图书馆内大声喧哗！谢谢合作。。。",
    "价格：￥１２８．００（含税），数量：３件。",
]
RARE_CJK = "𡃁𠀋𠀍𪚥𫝀𬺰𰻞𠮷𡈽𤭢"
CODE = [
    "def add(a, b):\n    return a + b\n",
    "for (let i = 0; i < n; i++) {\n\tsum += xs[i] * 2;\n}",
    "#include <stdio.h>\nint main(void) { printf(\"%d\\n\", 42); return 0; }",
    "{\"name\": \"minicpm\", \"layers\": 40, \"hidden\": 2304, \"ok\": true}",
    "<table><tr><td>1</td><td>2</td></tr></table>",
    "<!-- comment --><p>Hello <b>world</b></p><br/>",
    "```python\nprint('hi')  # comment\n```",
    "SELECT id, name FROM users WHERE age >= 18 ORDER BY name;",
    "x = [i**2 for i in range(10) if i % 3 == 0]",
    "if (a != b && c <= d) { return a ?? b; } // done",
    "export const WS = '\\u2581'; // spaces become U+2581",
    "$ git commit -m \"fix: tokenizer\" && echo ok",
]
EMOJI = ["😀", "😃", "🌍", "👍🏽", "👨‍👩‍👧‍👦", "🇨🇳", "🇺🇸", "❤️", "1️⃣", "🤖", "🎉", "🐱", "🦊", "✨", "🧑🏿‍💻", "🫠"]
OTHER_SCRIPTS = [
    "Привет, как дела? Всё хорошо.",
    "Γειά σου κόσμε, αυτό είναι ένα τεστ.",
    "مرحبا بالعالم، هذا اختبار.",
    "שלום עולם, זה מבחן.",
    "नमस्ते दुनिया, यह एक परीक्षण है।",
    "สวัสดีชาวโลก นี่คือการทดสอบ",
    "안녕하세요 세계, 이것은 테스트입니다.",
    "こんにちは世界、これはテストです。カタカナもあります。",
    "Ünïcödé àccents, naïve café, façade, smørrebrød, Øresund.",
    "e\u0301 a\u0300 o\u0308 (combining marks) ﬁ ﬂ (ligatures) ½ ² ™ ©",
    "∀x ∈ ℝ: x² ≥ 0; ∑ᵢ aᵢ = ∫₀¹ f(t) dt ≈ π/4",
    "ｆｕｌｌｗｉｄｔｈ ＡＢＣ ０１２３ ＋－＝ ％／｜",
]
SPECIAL_BITS = [
    "<image>", "</image>", "<unk>", "<s>", "</s>", "<ref>", "</ref>", "<box>", "</box>", "<quad>", "</quad>",
    "<imag", "<image", "</s", "<<image>>", "<s><s>", "</image><image>", "< s>", "<用户>", "<AI>", "<SEP>",
    "<reserved_12>", "<point>", "<slice>",
]
WHITESPACE = [" ", "  ", "   ", "\t", "\t\t", "\n", "\n\n", "\r\n", "\r", " \t ", "\u3000", "\u00a0", "\u2009",
              "\x0b", "\x0c", "    "]


def random_codepoints(rng, n):
    """Any scalar value except surrogates (and NUL), weighted towards the BMP."""
    out = []
    while len(out) < n:
        cp = rng.randrange(0x20, 0x3000) if rng.random() < 0.5 else rng.randrange(0x20, 0x110000)
        if 0xD800 <= cp <= 0xDFFF:
            continue
        out.append(chr(cp))
    return "".join(out)


def prose_sentence(rng):
    words = [rng.choice(WORDS) for _ in range(rng.randint(3, 14))]
    if rng.random() < 0.5:
        words[0] = words[0].capitalize()
    s = " ".join(words)
    return s + rng.choice([".", "!", "?", ",", ";", ":", "...", ""])


def build_corpus():
    rng = random.Random(SEED)
    lines = []
    lines += PROSE + CHINESE + CODE + OTHER_SCRIPTS
    lines += ["", " ", "  leading", "trailing  ", "\t\tdouble tab", "a\r\nb\r\nc", "x\ry", " \n ", "▁already▁escaped ▁",
              "emoji " + "".join(EMOJI), RARE_CJK, "12345678901234567890", "3.14159 2.71828 1e-6 -0.5",
              "MiniCPM-V (OmniLMM-3B) runs at 448×448.", "\x00NUL inside\x00", "\U0010FFFF\uFFFF\uFFFE\uFEFF"]
    # The real chat prompt (SPEC section 6) and variants.
    img = "<image>" + "<unk>" * 64 + "</image>"
    lines += ["<用户>" + img + "\nWhat is in the image?<AI>",
              "<用户>" + img + "\n这张图片里有什么？<AI>一只猫。<用户>它是什么颜色的？<AI>"]
    for _ in range(260):
        lines.append(" ".join(prose_sentence(rng) for _ in range(rng.randint(1, 4))))
    for _ in range(140):
        parts = [rng.choice(CHINESE)[: rng.randint(3, 30)] for _ in range(rng.randint(1, 3))]
        if rng.random() < 0.3:
            parts.insert(rng.randrange(len(parts) + 1), rng.choice(RARE_CJK))
        lines.append(rng.choice(["", " ", "，"]).join(parts))
    for _ in range(120):
        pool = [prose_sentence(rng), rng.choice(CHINESE), rng.choice(CODE), rng.choice(EMOJI), rng.choice(EMOJI),
                rng.choice(OTHER_SCRIPTS), rng.choice(SPECIAL_BITS), rng.choice(SPECIAL_BITS)]
        k = rng.randint(2, 6)
        pieces = rng.sample(pool, k)
        lines.append("".join(p + rng.choice(WHITESPACE + [""] * 6) for p in pieces))
    for _ in range(100):
        pieces = []
        for _ in range(rng.randint(2, 8)):
            pieces.append(rng.choice([rng.choice(WORDS), rng.choice(SPECIAL_BITS), rng.choice(EMOJI),
                                      rng.choice(RARE_CJK), rng.choice(CHINESE)[:4]]))
            pieces.append(rng.choice(WHITESPACE + ["", "", ""]))
        lines.append("".join(pieces))
    for _ in range(60):
        lines.append(random_codepoints(rng, rng.randint(1, 40)))
    for _ in range(40):
        lines.append(rng.choice(WHITESPACE) * rng.randint(1, 4) + prose_sentence(rng) + rng.choice(WHITESPACE) * rng.randint(1, 4))
    # Long lines: a heap-sized BPE run without spaces, and a long English paragraph.
    lines.append("".join(rng.choice(CHINESE) for _ in range(60)).replace("，", "").replace("。", ""))
    lines.append(" ".join(rng.choice(PROSE) for _ in range(25)))
    for s in lines:
        assert not any(0xD800 <= ord(c) <= 0xDFFF for c in s)
    return lines


# ----------------------------------------------------------------------------- outputs

def check_golden(sp, golden_path):
    with open(golden_path, encoding="utf-8") as f:
        cases = json.load(f)["cases"]
    for c in cases:
        assert hf_encode(sp, c["text"]) == c["ids"], c["text"]
        assert hf_decode_436(sp, c["ids"]) == c["decoded"], c["text"]
    print(f"re-stated HF semantics agree with {len(cases)} golden cases")


def decode_cases(sp, rng, n):
    """Random id sequences, biased towards byte pieces (valid and broken UTF-8) and special tokens."""
    byte_ids = [i for i in range(sp.get_piece_size()) if sp.is_byte(i)]
    special_ids = [sp.piece_to_id(s) for s in specials_of(sp)]
    utf8_runs = [[sp.piece_to_id("<0x%02X>" % b) for b in ch.encode("utf-8")] for ch in "é中𡃁😀"]
    cases = []
    for _ in range(n):
        ids = []
        for _ in range(rng.randint(1, 12)):
            r = rng.random()
            if r < 0.45 and not byte_ids:
                ids.append(rng.randrange(sp.get_piece_size()))
            elif r < 0.3:
                ids.append(rng.choice(byte_ids))
            elif r < 0.45:
                ids.extend(rng.choice(utf8_runs)[: rng.randint(1, 4)])
            elif r < 0.6:
                ids.append(rng.choice(special_ids))
            else:
                ids.append(rng.randrange(sp.get_piece_size()))
        cases.append({"ids": ids, "decoded": hf_decode_436(sp, ids)})
    return cases


def sp_decode_cases(sp, rng, n):
    """sp.decode(pieces) itself on random piece lists, with pieces HF never passes (control, <unk>, non-pieces)."""
    extra = ["<unk>", "<s>", "</s>", "not-a-piece", WS, WS + WS + "x", "<0x41>", "<0xE4>", "<0xB8>", "<0xAD>"]
    cases = []
    for _ in range(n):
        pieces = [rng.choice(extra) if rng.random() < 0.4 else sp.id_to_piece(rng.randrange(sp.get_piece_size()))
                  for _ in range(rng.randint(1, 8))]
        cases.append({"pieces": pieces, "decoded": sp.decode(pieces)})
    return cases


def train_tiny(prefix, **kw):
    """Trains on prose, Chinese and code only; characters outside that are unknown (or byte fallback)."""
    rng = random.Random(SEED + 2)
    text = PROSE + CHINESE + CODE + OTHER_SCRIPTS[:2] + [prose_sentence(rng) for _ in range(400)]
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(text), model_prefix=prefix, model_type="bpe", vocab_size=kw.pop("vocab_size"),
        user_defined_symbols=["\n", "\t"] + WRAPPER_SPECIALS + ["...", "<SEP>"], num_threads=1,
        split_digits=True, character_coverage=0.98, normalization_rule_name="identity", minloglevel=2, **kw)
    os.remove(prefix + ".vocab")
    return spm.SentencePieceProcessor(model_file=prefix + ".model")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=os.path.join(REPO, "..", "shared", "reference", "tokenizer.model"))
    ap.add_argument("--golden", default=os.path.join(REPO, "..", "shared", "golden", "tokenizer-cases.json"))
    args = ap.parse_args()
    sp = spm.SentencePieceProcessor(model_file=args.model)
    check_golden(sp, args.golden)
    corpus = build_corpus()
    rng = random.Random(SEED + 1)
    os.makedirs(OUT, exist_ok=True)
    with open(args.model, "rb") as f:
        sha = hashlib.sha256(f.read()).hexdigest()
    specials = specials_of(sp)
    lines = []
    for text in corpus:
        ids = hf_encode(sp, text)
        entry = {"text": text, "ids": ids}
        if any(s in text for s in specials) or WS in text:
            entry["decoded"] = hf_decode_436(sp, ids)  # not a plain round trip; record what 4.36 prints
        else:
            assert hf_decode_436(sp, ids) == "<s>" + text, text  # the round trip the TS test relies on
        lines.append(entry)
    doc = {
        "what": "LlamaTokenizerWrapper ids (legacy slow tokenizer re-stated over the real sentencepiece) for a "
                "mixed corpus; decoded = transformers 4.36 decode where it is not '<s>' + text",
        "generated_by": "reference/tokenizer_corpus.py", "seed": SEED,
        "versions": {"python": sys.version.split()[0], "sentencepiece": spm.__version__},
        "tokenizer_model_sha256": sha, "n_lines": len(lines), "lines": lines,
        "decode_cases": decode_cases(sp, rng, 150),
        "sp_decode_cases": sp_decode_cases(sp, rng, 60),
    }
    write_json(os.path.join(OUT, "corpus_ids.json"), doc)

    tiny = []
    configs = [
        ("tiny_identity", dict(vocab_size=700, byte_fallback=True, add_dummy_prefix=False,
                               remove_extra_whitespaces=False, allow_whitespace_only_pieces=True)),
        ("tiny_dummy_prefix", dict(vocab_size=500, byte_fallback=False)),  # sentencepiece's whitespace defaults
    ]
    for name, kw in configs:
        settings = dict(kw)
        tsp = train_tiny(os.path.join(OUT, name), **kw)
        sample = [corpus[i] for i in range(0, len(corpus), 7)]
        entries = [{"text": t, "ids": hf_encode(tsp, t)} for t in sample]
        for e in entries:
            e["decoded"] = hf_decode_436(tsp, e["ids"])
        tiny.append({"model": name + ".model", "settings": settings, "lines": entries,
                     "decode_cases": decode_cases(tsp, rng, 60), "sp_decode_cases": sp_decode_cases(tsp, rng, 60)})
    write_json(os.path.join(OUT, "tiny_models.json"),
               {"what": "ids/decodes of every 7th corpus line under tiny BPE models trained by this script",
                "generated_by": "reference/tokenizer_corpus.py", "seed": SEED, "models": tiny})


def write_json(path, doc):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(doc, f, ensure_ascii=False, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {os.path.relpath(path, REPO)} ({os.path.getsize(path) / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
