"""The tiny SentencePiece BPE tokenizer of the bundled model (weights/tiny), used by make_fixtures.py.

Same special layout and trainer flags as the real MiniCPM-V v1 tokenizer.model (SPEC 7): unk 0 `<unk>`,
bos 1 `<s>`, eos 2 `</s>`, user-defined symbols from id 3 with `\\n` = 5, `\\t` = 6 and `<image>` .. `</quad>` =
101 .. 108 (the real model's `<SEP>`, `<CLS>` at 3, 4; every other user-defined id is `<reserved_k>`), then the
256 byte-fallback pieces, then BPE merges. Identity normalizer, no dummy prefix, whitespace-only pieces
allowed, digits split. Trained on a corpus this file generates deterministically (English + Chinese).
"""
from __future__ import annotations

import io
import random

VOCAB_SIZE = 2048  # the layout below (365 fixed pieces) leaves ~1680 for characters and merges
SPECIAL_AT = {3: '<SEP>', 4: '<CLS>', 5: '\n', 6: '\t', 101: '<image>', 102: '</image>', 103: '<ref>',
              104: '</ref>', 105: '<box>', 106: '</box>', 107: '<quad>', 108: '</quad>'}
LAST_USER_DEFINED = 108


def user_defined_symbols() -> list[str]:
    return [SPECIAL_AT.get(i, f'<reserved_{i}>') for i in range(3, LAST_USER_DEFINED + 1)]


EN_WORDS = """the a an is are was were be been this that these those there here what which who where when why how
in on at of to from with without by for about into over under between behind above below near far left right top
bottom center middle side corner edge image picture photo scene view frame color colors red green blue yellow
orange purple pink brown black white gray grey dark light bright pale shiny stripe stripes striped circle circles
ring rings square squares triangle line lines dot dots shape shapes pattern gradient texture noise sky cloud clouds
sun moon star stars tree trees grass flower flowers river lake sea ocean mountain hill road street car bus train
bike boat plane rocket person people man woman child dog cat bird horse fish table chair book cup bottle phone
computer window door house building city room wall floor describe tell me please can you see do does show shows
look looks like detail details answer question user assistant model vision language text word words number numbers
count many few one two three four five some all any every each other another more most less least very quite
really just only also and or but not no yes it its they them their we our he she his her i my your you has have
had make made take taken give given write read say said think know find found use used good bad big small large
little long short wide narrow tall high low old new first last next same different whole half part parts main
background foreground object objects item items area region box boxes point points position size width height
""".split()
ZH_CHARS = ('的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动同工也能下过子说产种面'
            '而方后多定行学法所民得经十三之进着等部度家电力里如水化高自二理起小物现实加量都两体制机当使点从业本去把性好'
            '应开它合还因由其些然前外天政四日那社义事平形相全表间样与关各重新线内数正心反你明看原又么利比或但质气第向道'
            '命此变条只没结解问意建月公无系军很情者最立代想已通并提直题党程展五果料象员革位入常文总次品式活设及管特件长'
            '求老头基资边流路级少图山统接知较将组见计别她手角期根论运农指几九区强放决西被干做必战先回则任取据处队南给色'
            '光门即保治北造百规热领七海口东导器压志世金增争济阶油思术极交受联什认六共权收证改清己美再采转更单风切打白教'
            '速花带安场身车例真务具万每目至达走积示议声报斗完类八离华名确才科张信马节话米整空元况今集温传土许步群广石记'
            '需段研界拉林律叫且究观越织装影算低持音众书布复容儿须际商非验连断深难近矿千周委素技备半办青省列习响约支般史'
            '感劳便团往酸历市克何除消构府称太准精值号率族维划选标写存候毛亲快效斯院查江型眼王按格养易置派层片始却专状育'
            '厂京识适属圆包火住调满县局照参红细引听该铁价严龙飞用户图片颜色什么描述回答问题请详细这张里面有')
ZH_WORDS = """用户 助手 图片 图像 照片 颜色 红色 蓝色 绿色 黄色 白色 黑色 灰色 紫色 橙色 圆形 方形 三角形 线条 条纹 背景
前景 中间 左边 右边 上面 下面 天空 太阳 月亮 星星 云朵 树木 花朵 河流 大海 高山 道路 汽车 火箭 飞机 房子 城市
描述 回答 问题 什么 这张 里面 详细 请问 可以 看到 一个 两个 三个 很多 一些 没有 因为 所以 但是 如果 我们 你们
他们 模型 语言 视觉 文字 数字 形状 图案 渐变 纹理 明亮 黑暗 美丽 简单 复杂 清楚 模糊 非常 比较 已经 正在""".split()


def corpus(n_lines: int = 12000, seed: int = 20261126) -> list[str]:
    """Deterministic mixed English / Chinese lines (Python's random.Random with a fixed seed)."""
    r = random.Random(seed)
    onsets = ['', 'b', 'c', 'd', 'f', 'g', 'h', 'k', 'l', 'm', 'n', 'p', 'r', 's', 't', 'v', 'w', 'z', 'br', 'ch',
              'cl', 'dr', 'fl', 'gr', 'pl', 'pr', 'sh', 'sk', 'sl', 'sp', 'st', 'th', 'tr']
    vowels = ['a', 'e', 'i', 'o', 'u', 'ai', 'ea', 'ee', 'oo', 'ou', 'io', 'y']
    codas = ['', '', 'n', 'r', 's', 't', 'l', 'm', 'nd', 'ng', 'st', 'rt', 'ck', 'x']
    pseudo = sorted({''.join(r.choice(onsets) + r.choice(vowels) + r.choice(codas) for _ in range(r.randint(1, 3)))
                     for _ in range(2500)})
    zh_pseudo = [''.join(r.choice(ZH_CHARS) for _ in range(r.randint(2, 4))) for _ in range(1500)]
    lines = []
    for _ in range(n_lines):
        kind = r.random()
        if kind < 0.45:
            words = [r.choice(EN_WORDS) if r.random() < 0.7 else r.choice(pseudo) for _ in range(r.randint(4, 16))]
            if r.random() < 0.3:
                words.insert(r.randrange(len(words)), str(r.randint(0, 99999)))
            if r.random() < 0.15:
                words.insert(r.randrange(len(words)), r.choice(['AI', 'a < b', 'x > y', '(1,2)', 'A.I.']))
            s = ' '.join(words)
            s = s[0].upper() + s[1:] + r.choice(['.', '.', '?', '!', ',', ':'])
        elif kind < 0.85:
            n = r.randint(3, 12)
            s = ''.join(r.choice(ZH_WORDS) if r.random() < 0.6 else r.choice(zh_pseudo) for _ in range(n))
            if r.random() < 0.3:
                s += str(r.randint(0, 999))
            s += r.choice(['。', '？', '！', '，', '：'])
        elif kind < 0.92:  # arithmetic, code and addresses: ASCII symbols get pieces instead of bytes
            a, b = r.randint(0, 999), r.randint(0, 999)
            s = r.choice([f'{a} + {b} = {a + b}', f'{a} - {b} = {a - b}', f'x = y * {a} / {b}',
                          f"print('{r.choice(EN_WORDS)}')  # {r.choice(EN_WORDS)}", f'[{a}, {b}] & {{"k": {a}}}',
                          f'https://example.com/{r.choice(pseudo)}/{r.choice(EN_WORDS)}-{a}.html',
                          f'<{r.choice(EN_WORDS)}> "{r.choice(pseudo)}" %{a} @{b} ~ ^ | ; `$`'])
        else:  # mixed, as in chat answers
            s = (r.choice(ZH_WORDS) + ' ' + ' '.join(r.choice(EN_WORDS) for _ in range(r.randint(1, 4))) + ' '
                 + r.choice(ZH_WORDS) + r.choice(['用户', 'AI', '助手']))
        if r.random() < 0.05:
            s = '  ' + s  # leading spaces -> whitespace-only pieces
        lines.append(s)
    return lines


def train(lines: list[str] | None = None) -> bytes:
    """Train and return the serialized tokenizer.model (single-threaded: byte-identical across runs)."""
    import sentencepiece as spm
    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines or corpus()), model_writer=buf, model_type='bpe', vocab_size=VOCAB_SIZE,
        byte_fallback=True, add_dummy_prefix=False, normalization_rule_name='identity',
        remove_extra_whitespaces=False, allow_whitespace_only_pieces=True, split_digits=True,
        character_coverage=1.0, unk_id=0, bos_id=1, eos_id=2, pad_id=-1, unk_piece='<unk>', bos_piece='<s>',
        eos_piece='</s>', user_defined_symbols=user_defined_symbols(), num_threads=1, minloglevel=2)
    return buf.getvalue()


def check_layout(model_bytes: bytes) -> None:
    import sentencepiece as spm
    sp = spm.SentencePieceProcessor(model_proto=model_bytes)
    want = {0: '<unk>', 1: '<s>', 2: '</s>', **SPECIAL_AT}
    bad = {i: (sp.id_to_piece(i), p) for i, p in want.items() if sp.id_to_piece(i) != p}
    if bad or sp.get_piece_size() != VOCAB_SIZE or sp.piece_to_id('<0x0A>') != LAST_USER_DEFINED + 1 + 0x0A:
        raise RuntimeError(f'tiny tokenizer layout is off: {bad}, size {sp.get_piece_size()}')


def tokenizer_config() -> dict:
    """HF tokenizer_config.json with the real file's keys and values (SPEC 7)."""
    specials = {0: '<unk>', 1: '<s>', 2: '</s>', **{i: SPECIAL_AT[i] for i in range(101, 109)}}
    return {
        'add_bos_token': True, 'add_eos_token': False,
        'added_tokens_decoder': {str(i): {'content': c, 'lstrip': False, 'normalized': False, 'rstrip': False,
                                          'single_word': False, 'special': True} for i, c in specials.items()},
        'additional_special_tokens': ADDITIONAL_SPECIALS, 'bos_token': '<s>', 'clean_up_tokenization_spaces': False,
        'eos_token': '</s>', 'legacy': True, 'model_max_length': 1000000000000000019884624838656,
        'pad_token': None, 'sp_model_kwargs': {}, 'spaces_between_special_tokens': False,
        'tokenizer_class': 'LlamaTokenizerWrapper', 'unk_token': '<unk>', 'use_default_system_prompt': False,
        'auto_map': {'AutoTokenizer': ['modeling_minicpmv.LlamaTokenizerWrapper', None]},
    }


ADDITIONAL_SPECIALS = ['<ref>', '<image>', '</quad>', '</image>', '<quad>', '</ref>', '<box>', '</box>']


def special_tokens_map() -> dict:
    tok = {'lstrip': False, 'normalized': False, 'rstrip': False, 'single_word': False}
    return {'additional_special_tokens': ADDITIONAL_SPECIALS, 'bos_token': {'content': '<s>', **tok},
            'eos_token': {'content': '</s>', **tok}, 'unk_token': {'content': '<unk>', **tok}}
