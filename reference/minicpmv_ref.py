"""Independent PyTorch reference of MiniCPM-V v1 (HF `openbmb/MiniCPM-V`, OmniLMM-3B), fp32 on CPU.

`to_model_dtype(model, torch.bfloat16)` gives the bf16 model the original card runs (reference/bench.py's
rival): parameters and the RoPE tables in bf16 as `Module.to` casts them, and the casts the original code
makes (RoPE and the norms' rsqrt in fp32 then back, softmax in fp32 then back, logits `.float()`). In fp32
those casts are no-ops, so the parity checks run the same code.

Written from ../shared/SPEC.md (section numbers below are SPEC's), not from the original code. Parameter
names are the checkpoint's: `vpm.*` is timm's own VisionTransformer (SigLIP so400m family, SPEC 2),
`resampler.*` uses torch.nn.MultiheadAttention (SPEC 3), `llm.*` is a small MiniCPM decoder with a KV cache
(eager attention, SPEC 4). Module paths double as hook names: a forward hook on `llm.model.layers.0.mlp`
here records the same tensor as one on the original model.

Upstream facts cited as `file @ version`: modeling_minicpmv.py / resampler.py / modeling_minicpm.py are the
v1 HF files (TobyYang7/Vision MiniCPM-V/ @ 654184f); timm @ v0.9.10; transformers generation @ 4.36.0.
"""
from __future__ import annotations

import json
import math
import os
import re
import sys
from dataclasses import MISSING, dataclass, fields
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent
STUB_DIR = HERE / '_torchvision_stub'
IMAGE_SIZE = 448  # SPEC 5: every image is squashed to 448x448


class RefError(Exception):
    """Base class: bad input to the reference (config, checkpoint, image, prompt, argument)."""


class ConfigError(RefError):
    pass


class CheckpointError(RefError):
    pass


class InputError(RefError):
    pass


def import_timm():
    """Import timm 1.x, falling back to the import-only torchvision stub (see _torchvision_stub/__init__.py)."""
    try:
        import torchvision  # noqa: F401  (a wheel built for another torch raises RuntimeError, not ImportError)
    except Exception:
        for name in [m for m in sys.modules if m == 'torchvision' or m.startswith('torchvision.')]:
            del sys.modules[name]
        if str(STUB_DIR) not in sys.path:
            sys.path.insert(0, str(STUB_DIR))
    import timm
    return timm


# ----------------------------------------------------------------------------------------------- config
@dataclass
class Config:
    """config.json with HF spellings (SPEC 1). The `vision_*` keys are absent from the real file, where the
    so400m values below are implied by `vision_encoder`; tiny checkpoints set them."""
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    vocab_size: int
    num_key_value_heads: int | None = None
    rms_norm_eps: float = 1e-5
    rope_theta: float = 10000.0
    rope_scaling: dict | None = None
    max_position_embeddings: int = 2048
    scale_emb: float = 1.0
    dim_model_base: float = 1.0
    scale_depth: float = 1.0
    query_num: int = 64
    image_size: int = 448
    drop_vision_last_layer: bool = True
    bos_token_id: int = 1
    eos_token_id: int = 2
    vision_embed_dim: int = 1152
    vision_depth: int = 27
    vision_num_heads: int = 16
    vision_mlp_ratio: float = 3.7362
    vision_mlp_hidden_dim: int | None = None

    @staticmethod
    def load(path: str | os.PathLike) -> 'Config':
        try:
            raw = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise ConfigError(f'{path}: cannot read config.json ({e})') from e
        if not isinstance(raw, dict):
            raise ConfigError(f'{path}: not a JSON object')
        known = {f.name for f in fields(Config)}
        required = [f.name for f in fields(Config) if f.default is MISSING]
        missing = [k for k in required if k not in raw]
        if missing:
            raise ConfigError(f'{path}: missing keys {missing}')
        kinds = {'int': (int,), 'float': (int, float), 'bool': (bool,), 'int | None': (int, type(None)),
                 'dict | None': (dict, type(None))}
        for f in fields(Config):
            if f.name in raw:
                v, ok = raw[f.name], kinds[f.type]
                if not isinstance(v, ok) or (isinstance(v, bool) and bool not in ok):
                    raise ConfigError(f'{path}: {f.name} must be {f.type}, got {v!r}')
        cfg = Config(**{k: v for k, v in raw.items() if k in known})
        cfg.validate(str(path))
        return cfg

    def validate(self, where: str = 'config') -> None:
        if self.num_key_value_heads is None:
            self.num_key_value_heads = self.num_attention_heads
        if self.rope_scaling is not None:
            raise ConfigError(f'{where}: rope_scaling {self.rope_scaling!r} is not supported (v1 has null)')
        if self.hidden_size % self.num_attention_heads or self.num_attention_heads % self.num_key_value_heads:
            raise ConfigError(f'{where}: hidden_size {self.hidden_size} / heads {self.num_attention_heads} '
                              f'/ kv heads {self.num_key_value_heads} do not divide')
        if self.hidden_size % 128:
            raise ConfigError(f'{where}: hidden_size {self.hidden_size} must be a multiple of 128 '
                              '(resampler heads = hidden_size // 128, SPEC 3)')
        if math.isqrt(self.query_num) ** 2 != self.query_num:
            raise ConfigError(f'{where}: query_num {self.query_num} must be a square')
        if self.vision_embed_dim % self.vision_num_heads:
            raise ConfigError(f'{where}: vision_embed_dim {self.vision_embed_dim} not divisible by '
                              f'vision_num_heads {self.vision_num_heads}')

    # Derived numbers, computed in one place (SPEC 4).
    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    @property
    def residual_scale(self) -> float:
        return self.scale_depth / math.sqrt(self.num_hidden_layers)

    @property
    def logit_divisor(self) -> float:
        return self.hidden_size / self.dim_model_base

    @property
    def vision_mlp_hidden(self) -> int:
        if self.vision_mlp_hidden_dim is not None:
            return int(self.vision_mlp_hidden_dim)
        return int(self.vision_embed_dim * self.vision_mlp_ratio)  # timm Block: int(dim * mlp_ratio)

    @property
    def vision_blocks_run(self) -> int:
        return self.vision_depth - (1 if self.drop_vision_last_layer else 0)


# ----------------------------------------------------------------------------------------------- vision
def build_vpm(cfg: Config) -> nn.Module:
    """timm's VisionTransformer as `timm.create_model('vit_so400m_patch14_siglip_384', num_classes=0,
    dynamic_img_size=True, dynamic_img_pad=True)` builds it (SPEC 2), shrunk by the config's vision_* keys;
    then `attn_pool = Identity` and the last block dropped (modeling_minicpmv.py init_vision_module)."""
    import_timm()
    from timm.models.vision_transformer import VisionTransformer
    # subtle: timm sizes the MLP as int(dim * mlp_ratio); (hidden + 0.5) / dim lands inside [hidden, hidden+1)
    # without float round-off pushing int() one below.
    mlp_ratio = (cfg.vision_mlp_hidden + 0.5) / cfg.vision_embed_dim
    vpm = VisionTransformer(img_size=384, patch_size=14, embed_dim=cfg.vision_embed_dim, depth=cfg.vision_depth,
                            num_heads=cfg.vision_num_heads, mlp_ratio=mlp_ratio, class_token=False,
                            global_pool='map', num_classes=0, dynamic_img_size=True, dynamic_img_pad=True)
    vpm.attn_pool = nn.Identity()
    if cfg.drop_vision_last_layer:
        vpm.blocks = vpm.blocks[:-1]
    fc1 = vpm.blocks[0].mlp.fc1 if len(vpm.blocks) else None
    if fc1 is not None and fc1.out_features != cfg.vision_mlp_hidden:
        raise ConfigError(f'vpm MLP hidden {fc1.out_features} != config {cfg.vision_mlp_hidden}')
    assert vpm.num_prefix_tokens == 0 and vpm.patch_embed.grid_size == (27, 27)
    return vpm


def resample_vpm_pos_embed(vpm: nn.Module, grid_hw: tuple[int, int]) -> torch.Tensor:
    """`vpm.pos_embed_resampled`: 27x27 -> grid, antialiased bicubic (timm layers/pos_embed.py @ v0.9.10)."""
    from timm.layers import resample_abs_pos_embed
    return resample_abs_pos_embed(vpm.pos_embed, new_size=list(grid_hw), old_size=list(vpm.patch_embed.grid_size),
                                  num_prefix_tokens=0)


def sincos_2d(embed_dim: int, grid: int) -> np.ndarray:
    """resampler.pos_embed as constructed (SPEC 3): float32 numpy, token t = i*grid + j (i row, j column);
    subtle: the FIRST half encodes the column j."""
    def one_d(dim: int, pos: np.ndarray) -> np.ndarray:
        omega = np.arange(dim // 2, dtype=np.float32)
        omega /= dim / 2.0
        omega = 1.0 / 10000 ** omega
        out = np.einsum('m,d->md', pos.reshape(-1), omega)
        return np.concatenate([np.sin(out), np.cos(out)], axis=1)
    g = np.arange(grid, dtype=np.float32)
    w, h = np.meshgrid(g, g)  # w varies along columns
    return np.concatenate([one_d(embed_dim // 2, w), one_d(embed_dim // 2, h)], axis=1).astype(np.float32)


class Resampler(nn.Module):
    """Qwen-VL-style cross-attention resampler (resampler.py @ v1, SPEC 3)."""

    def __init__(self, query_num: int, embed_dim: int, kv_dim: int):
        super().__init__()
        self.grid = math.isqrt(query_num)
        self.query = nn.Parameter(torch.zeros(query_num, embed_dim))        # [Q, D]
        self.pos_embed = nn.Parameter(torch.zeros(query_num, embed_dim))    # [Q, D] stored sin-cos table
        self.kv_proj = nn.Linear(kv_dim, embed_dim, bias=False)
        self.attn = nn.MultiheadAttention(embed_dim, embed_dim // 128)     # seq-first, 128-wide heads
        self.ln_q = nn.LayerNorm(embed_dim, eps=1e-6)
        self.ln_kv = nn.LayerNorm(embed_dim, eps=1e-6)
        self.ln_post = nn.LayerNorm(embed_dim, eps=1e-6)
        self.proj = nn.Parameter(torch.zeros(embed_dim, embed_dim))         # raw [in, out], used as x @ proj

    def key_pos_embed(self, n_tokens: int) -> torch.Tensor:
        """get_abs_pos: grid x grid -> sqrt(L) x sqrt(L), plain bicubic (a=-0.75, no antialias) in fp32."""
        tgt = math.isqrt(n_tokens)
        if tgt * tgt != n_tokens:
            raise InputError(f'resampler: {n_tokens} vision tokens do not form a square grid')
        if tgt == self.grid:
            return self.pos_embed
        pe = self.pos_embed.float().reshape(1, self.grid, self.grid, -1).permute(0, 3, 1, 2)
        pe = F.interpolate(pe, size=(tgt, tgt), mode='bicubic', align_corners=False)
        return pe.permute(0, 2, 3, 1).flatten(0, 2).to(self.pos_embed.dtype)  # [L, D]

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x [B, L, kv_dim]
        pos_k = self.key_pos_embed(x.shape[1])
        x = self.ln_kv(self.kv_proj(x)).permute(1, 0, 2)                    # [L, B, D]
        q = self.ln_q(self.query)[:, None].expand(-1, x.shape[1], -1)       # [Q, B, D]
        # need_weights=True (the default) keeps torch on the non-fused path the original ran (SPEC 3).
        out = self.attn(q + self.pos_embed[:, None], x + pos_k[:, None], x)[0]  # [Q, B, D]
        return self.ln_post(out.permute(1, 0, 2)) @ self.proj              # [B, Q, D]


# ----------------------------------------------------------------------------------------------- LLM
class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # SPEC 4 / 8.6: variance in fp32, x * rsqrt in fp32, cast back BEFORE the weight multiply.
        var = x.float().pow(2).mean(-1, keepdim=True)
        return (x * torch.rsqrt(var + self.eps)).to(x.dtype) * self.weight


def rope_tables(cfg: Config, n_pos: int) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin [n_pos, head_dim], rotate-half layout, fp32 (modeling_minicpm.py MiniCPMRotaryEmbedding)."""
    d = cfg.head_dim
    inv_freq = 1.0 / (cfg.rope_theta ** (torch.arange(0, d, 2).float() / d))
    t = torch.arange(max(n_pos, cfg.max_position_embeddings), dtype=inv_freq.dtype)
    emb = torch.cat([torch.outer(t, inv_freq)] * 2, dim=-1)
    return emb.cos(), emb.sin()


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    h = x.shape[-1] // 2
    return torch.cat([-x[..., h:], x[..., :h]], dim=-1)


class KVCache:
    """Per-layer keys/values [B, n_kv, T, hd]; `reorder` picks rows for beam search."""

    def __init__(self, n_layers: int):
        self.k: list[torch.Tensor | None] = [None] * n_layers
        self.v: list[torch.Tensor | None] = [None] * n_layers

    @property
    def length(self) -> int:
        return 0 if self.k[0] is None else self.k[0].shape[2]

    def update(self, i: int, k: torch.Tensor, v: torch.Tensor):
        self.k[i] = k if self.k[i] is None else torch.cat([self.k[i], k], dim=2)
        self.v[i] = v if self.v[i] is None else torch.cat([self.v[i], v], dim=2)
        return self.k[i], self.v[i]

    def reorder(self, rows: torch.Tensor) -> None:
        self.k = [t.index_select(0, rows) for t in self.k]
        self.v = [t.index_select(0, rows) for t in self.v]


class Attention(nn.Module):
    def __init__(self, cfg: Config, layer: int):
        super().__init__()
        self.cfg, self.layer = cfg, layer
        d, hd = cfg.hidden_size, cfg.head_dim
        self.q_proj = nn.Linear(d, cfg.num_attention_heads * hd, bias=False)
        self.k_proj = nn.Linear(d, cfg.num_key_value_heads * hd, bias=False)
        self.v_proj = nn.Linear(d, cfg.num_key_value_heads * hd, bias=False)
        self.o_proj = nn.Linear(cfg.num_attention_heads * hd, d, bias=False)

    def forward(self, x, cos, sin, mask, cache: KVCache | None):  # x [B, T, D]; cos/sin [T, hd]
        c = self.cfg
        B, T, _ = x.shape
        q = self.q_proj(x).view(B, T, -1, c.head_dim).transpose(1, 2)  # (B, nh, T, hd)
        k = self.k_proj(x).view(B, T, -1, c.head_dim).transpose(1, 2)  # (B, nkv, T, hd)
        v = self.v_proj(x).view(B, T, -1, c.head_dim).transpose(1, 2)
        # RoPE in fp32, then back to the model dtype as apply_rotary_pos_emb does (SPEC 4; a no-op in fp32)
        dt = q.dtype
        q = (q.float() * cos + rotate_half(q.float()) * sin).to(dt)
        k = (k.float() * cos + rotate_half(k.float()) * sin).to(dt)
        if cache is not None:
            k, v = cache.update(self.layer, k, v)
        rep = c.num_attention_heads // c.num_key_value_heads
        if rep > 1:
            k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
        # eager path: divide AFTER the matmul, additive mask, softmax in fp32 (SPEC 4, 8.3)
        s = torch.matmul(q, k.transpose(2, 3)) / math.sqrt(c.head_dim)   # (B, nh, T, S)
        if mask is not None:
            s = s + mask
        p = F.softmax(s, dim=-1, dtype=torch.float32).to(q.dtype)
        o = torch.matmul(p, v).transpose(1, 2).reshape(B, T, -1)
        return self.o_proj(o)


class MLP(nn.Module):
    def __init__(self, cfg: Config):
        super().__init__()
        self.gate_proj = nn.Linear(cfg.hidden_size, cfg.intermediate_size, bias=False)
        self.up_proj = nn.Linear(cfg.hidden_size, cfg.intermediate_size, bias=False)
        self.down_proj = nn.Linear(cfg.intermediate_size, cfg.hidden_size, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class DecoderLayer(nn.Module):
    def __init__(self, cfg: Config, layer: int):
        super().__init__()
        self.scale = cfg.residual_scale  # scale_depth / sqrt(num_hidden_layers), on the branch output
        self.input_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.self_attn = Attention(cfg, layer)
        self.post_attention_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.mlp = MLP(cfg)

    def forward(self, h, cos, sin, mask, cache):
        h = h + self.self_attn(self.input_layernorm(h), cos, sin, mask, cache) * self.scale
        return h + self.mlp(self.post_attention_layernorm(h)) * self.scale


class MiniCPMModel(nn.Module):
    def __init__(self, cfg: Config):
        super().__init__()
        self.cfg = cfg
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.layers = nn.ModuleList(DecoderLayer(cfg, i) for i in range(cfg.num_hidden_layers))
        self.norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self._rope = rope_tables(cfg, 0)
        self._rope_dtype = torch.float32

    def forward(self, inputs_embeds: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        B, T, _ = inputs_embeds.shape
        past = cache.length if cache is not None else 0
        if past + T > self._rope[0].shape[0]:
            self._rope = tuple(t.to(self._rope_dtype) for t in rope_tables(self.cfg, past + T))
        cos, sin = (t[past:past + T] for t in self._rope)
        mask = None
        if T > 1:  # causal, additive finfo.min in the model dtype, as transformers' 4-D mask
            dt = inputs_embeds.dtype
            mask = torch.full((T, past + T), torch.finfo(dt).min, dtype=dt).triu(past + 1)
        h = inputs_embeds
        for layer in self.layers:
            h = layer(h, cos, sin, mask, cache)
        return self.norm(h)


class MiniCPMForCausalLM(nn.Module):
    def __init__(self, cfg: Config):
        super().__init__()
        self.cfg = cfg
        self.model = MiniCPMModel(cfg)
        self.lm_head = nn.Linear(cfg.hidden_size, cfg.vocab_size, bias=False)  # untied (SPEC 8.8)

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        return self.model.embed_tokens(ids) * self.cfg.scale_emb  # x scale_emb, text tokens only

    def forward(self, inputs_embeds: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        h = self.model(inputs_embeds, cache)
        return self.lm_head(h / self.cfg.logit_divisor).float()  # divide BEFORE lm_head (SPEC 8.5)


# ----------------------------------------------------------------------------------------------- model
class MiniCPMV(nn.Module):
    def __init__(self, cfg: Config):
        super().__init__()
        self.cfg = cfg
        self.vpm = build_vpm(cfg)
        self.resampler = Resampler(cfg.query_num, cfg.hidden_size, cfg.vision_embed_dim)
        self.llm = MiniCPMForCausalLM(cfg)

    def vision(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """get_vision_embedding for one image: [1,3,H,W] -> [1, query_num, D]."""
        if pixel_values.ndim != 4 or pixel_values.shape[:2] != (1, 3):
            raise InputError(f'pixel_values must be [1,3,H,W], got {list(pixel_values.shape)}')
        return self.resampler(self.vpm.forward_features(pixel_values.to(self.vpm.pos_embed.dtype)))

    def inputs_embeds(self, input_ids: torch.Tensor, image_bound: torch.Tensor, vision: torch.Tensor):
        """get_vllm_embedding: text rows x scale_emb, rows [start, end) replaced by the image tokens."""
        e = self.llm.embed(input_ids.long())                                  # [1, L, D]
        for b, (s, t) in enumerate(image_bound.tolist()):
            if t - s != vision.shape[1]:
                raise InputError(f'image_bound [{s},{t}) spans {t - s} rows, resampler gives {vision.shape[1]}')
            e[0, s:t] = vision[b].to(e.dtype)
        return e


def to_model_dtype(model: MiniCPMV, dtype: torch.dtype) -> MiniCPMV:
    """The model in `dtype` as `model.to(dtype)` makes the original (SPEC 8.1): parameters cast, and the RoPE
    cos/sin tables too (the original's are buffers, so `.to` rounds them; the angles stay fp32-computed)."""
    model = model.to(dtype)
    llm = model.llm.model
    llm._rope = tuple(t.to(dtype) for t in rope_tables(llm.cfg, llm._rope[0].shape[0]))
    llm._rope_dtype = dtype
    return model


def load_model(model_dir: str | os.PathLike) -> tuple[MiniCPMV, Config]:
    """Build from config.json and copy model.safetensors strictly: every key, shape and dtype checked."""
    from safetensors import safe_open
    model_dir = Path(model_dir)
    cfg = Config.load(model_dir / 'config.json')
    torch.manual_seed(0)  # construction-time init is overwritten below; seeded only for determinism
    model = MiniCPMV(cfg).eval()
    want = model.state_dict()
    path = model_dir / 'model.safetensors'
    if not path.is_file():
        raise CheckpointError(f'{path}: not found (sharded checkpoints: merge first)')
    got = {}
    with safe_open(str(path), framework='pt') as f:
        for k in f.keys():
            got[k] = f.get_tensor(k)
    missing, unexpected = sorted(set(want) - set(got)), sorted(set(got) - set(want))
    if missing or unexpected:
        raise CheckpointError(f'{path}: missing {missing[:8]}{"..." if len(missing) > 8 else ""}, '
                              f'unexpected {unexpected[:8]}{"..." if len(unexpected) > 8 else ""}')
    for k, t in got.items():
        if tuple(t.shape) != tuple(want[k].shape):
            raise CheckpointError(f'{path}: {k} has shape {list(t.shape)}, expected {list(want[k].shape)}')
        if t.dtype not in (torch.float32, torch.bfloat16, torch.float16):
            raise CheckpointError(f'{path}: {k} has dtype {t.dtype}, expected a float type')
        got[k] = t.float()  # bf16 -> fp32 is exact; the reference always computes in fp32
    model.load_state_dict(got, strict=True)
    return model, cfg


# ----------------------------------------------------------------------------------------------- image
def load_image(path: str | os.PathLike):
    """`Image.open(path).convert('RGB')`, as the model card and chat.py do (SPEC 5)."""
    from PIL import Image
    try:
        img = Image.open(path)
        img.load()
    except Exception as e:
        raise InputError(f'{path}: cannot decode image ({e})') from e
    return img.convert('RGB')


def preprocess(img) -> torch.Tensor:
    """Resize((448,448), BICUBIC) on the PIL image, ToTensor, Normalize(0.5, 0.5) -> [1,3,448,448] (SPEC 5)."""
    from PIL import Image
    if img.mode != 'RGB':
        raise InputError(f'preprocess expects an RGB PIL image, got mode {img.mode}')
    img = img.resize((IMAGE_SIZE, IMAGE_SIZE), Image.BICUBIC)  # Pillow returns a copy when already 448x448
    x = torch.from_numpy(np.array(img, dtype=np.uint8)).permute(2, 0, 1).contiguous()
    x = x.to(torch.float32).div(255)
    return x.sub_(0.5).div_(0.5)[None]


# ----------------------------------------------------------------------------------------------- tokenizer
# transformers' slow LlamaTokenizer: added_tokens_decoder entries are split out of the text first (SPEC 7).
DEFAULT_SPECIALS = ['<unk>', '<s>', '</s>', '<image>', '</image>', '<ref>', '</ref>', '<box>', '</box>',
                    '<quad>', '</quad>']


class Tokenizer:
    """LlamaTokenizerWrapper semantics (transformers 4.36, legacy=True, add_bos_token, no dummy prefix)."""

    def __init__(self, model_file: str | os.PathLike, specials: list[str] | None = None):
        import sentencepiece as spm
        if not Path(model_file).is_file():
            raise InputError(f'{model_file}: tokenizer.model not found')
        self.sp = spm.SentencePieceProcessor(model_file=str(model_file))
        self.specials = list(specials or DEFAULT_SPECIALS)
        self.special_ids = {s: self.sp.piece_to_id(s) for s in self.specials}
        for s, i in self.special_ids.items():
            if self.sp.id_to_piece(i) != s:
                raise InputError(f'{model_file}: special token {s!r} is not a piece of the model')
        self._split = re.compile('(' + '|'.join(re.escape(s) for s in sorted(self.specials, key=len, reverse=True))
                                 + ')')
        self.bos_id, self.eos_id, self.unk_id = self.sp.bos_id(), self.sp.eos_id(), self.sp.unk_id()
        self.im_start_id, self.im_end_id = self.sp.piece_to_id('<image>'), self.sp.piece_to_id('</image>')

    @staticmethod
    def from_dir(model_dir: str | os.PathLike) -> 'Tokenizer':
        model_dir = Path(model_dir)
        specials = None
        cfg_path = model_dir / 'tokenizer_config.json'
        if cfg_path.is_file():
            dec = json.loads(cfg_path.read_text()).get('added_tokens_decoder') or {}
            specials = [v['content'] for _, v in sorted(dec.items(), key=lambda kv: int(kv[0]))] or None
        return Tokenizer(model_dir / 'tokenizer.model', specials)

    def __len__(self) -> int:
        return self.sp.get_piece_size()

    def encode(self, text: str, add_bos: bool = True) -> list[int]:
        ids = [self.bos_id] if add_bos else []
        for chunk in self._split.split(text):
            if not chunk:
                continue
            ids += [self.special_ids[chunk]] if chunk in self.special_ids else self.sp.encode(chunk)
        return ids

    def decode(self, ids: list[int]) -> str:
        """PreTrainedTokenizer._decode + LlamaTokenizer.convert_tokens_to_string @ 4.36 (legacy): a leading
        U+2581 of the first token is dropped, special tokens are copied verbatim and, when the token before
        was not special, preceded by one space."""
        tokens = [self.sp.id_to_piece(int(i)) for i in ids]
        if not tokens:
            return ''
        if tokens[0].startswith('\u2581'):
            tokens[0] = tokens[0][1:]
        out, run, prev_special = '', [], False
        for i, tok in enumerate(tokens):
            if tok in self.special_ids:
                if not prev_special and i != 0:
                    out += ' '
                out += self.sp.decode_pieces(run) + tok
                run, prev_special = [], True
            else:
                run.append(tok)
                prev_special = False
        return out + self.sp.decode_pieces(run)


def chat_prompt(msgs: list[dict], query_num: int) -> str:
    """MiniCPMV.chat prompt (SPEC 6): image placeholder in the first (user) message, no separators."""
    if not isinstance(msgs, list) or not msgs:
        raise InputError('msgs must be a non-empty list of {role, content}')
    prompt = ''
    for i, m in enumerate(msgs):
        if not isinstance(m, dict) or m.get('role') not in ('user', 'assistant') or not isinstance(
                m.get('content'), str):
            raise InputError(f'msgs[{i}] must be {{"role": "user"|"assistant", "content": str}}, got {m!r}')
        c = m['content']
        if i == 0:
            if m['role'] != 'user':
                raise InputError('msgs[0] must have role "user" (the image goes into the first message)')
            c = '<image>' + '<unk>' * query_num + '</image>' + '\n' + c
        prompt += ('<用户>' if m['role'] == 'user' else '<AI>') + c
    return prompt + '<AI>'


def image_bound_of(ids: list[int], im_start_id: int, im_end_id: int, query_num: int) -> list[list[int]]:
    """_convert_to_tensors: [[index(<image>)+1, index(</image>)]]; v1 chat has exactly one image."""
    starts = [i + 1 for i, t in enumerate(ids) if t == im_start_id]
    ends = [i for i, t in enumerate(ids) if t == im_end_id]
    if len(starts) != 1 or len(ends) != 1 or ends[0] - starts[0] != query_num:
        raise InputError(f'prompt must hold exactly one <image>{query_num} x <unk></image> block; found '
                         f'starts {starts}, ends {ends} (was it truncated at 2048 tokens?)')
    return [[starts[0], ends[0]]]


def decode_answer(ids: list[int], tok: Tokenizer) -> str:
    """_decode_text: drop all 0s, a leading bos and a trailing eos, decode, strip (SPEC 6)."""
    ids = [i for i in ids if i != 0]
    if ids and ids[0] == tok.bos_id:
        ids = ids[1:]
    if ids and ids[-1] == tok.eos_id:
        ids = ids[:-1]
    return tok.decode(ids).strip()


# ----------------------------------------------------------------------------------------------- generation
# A step function maps (new rows [B,T,D], cache) -> last-position fp32 logits [B, V], extending the cache.
def _step(llm: MiniCPMForCausalLM, embeds: torch.Tensor, cache: KVCache) -> torch.Tensor:
    return llm(embeds, cache)[:, -1]


@torch.no_grad()
def greedy(llm: MiniCPMForCausalLM, inputs_embeds: torch.Tensor, max_new_tokens: int, eos_id: int,
           topk: int = 8):
    """Argmax decoding with KV cache; stops after emitting eos (kept). Returns ids, top-k ids, top-k logits."""
    cache = KVCache(llm.cfg.num_hidden_layers)
    logits = _step(llm, inputs_embeds, cache)
    ids, tk_ids, tk_vals = [], [], []
    for _ in range(max_new_tokens):
        v, i = torch.topk(logits[0], topk)
        tk_ids.append(i.tolist())
        tk_vals.append(v.tolist())
        t = int(torch.argmax(logits[0]))
        ids.append(t)
        if t == eos_id or len(ids) == max_new_tokens:
            break
        logits = _step(llm, llm.embed(torch.tensor([[t]])), cache)
    return ids, tk_ids, tk_vals


@torch.no_grad()
def beam_search(llm: MiniCPMForCausalLM, inputs_embeds: torch.Tensor, max_new_tokens: int, eos_id: int,
                num_beams: int = 3, repetition_penalty: float = 1.2) -> tuple[list[int], dict]:
    """transformers-4.36 beam search, batch 1, length_penalty 1, early_stopping False (SPEC 6.1).
    Returns the ids `generate` returns (new tokens; eos appended when the best hypothesis ended on eos)
    and diagnostics: per-step selection gaps and the final best-minus-second score gap."""
    cache = KVCache(llm.cfg.num_hidden_layers)
    last = _step(llm, inputs_embeds, cache).expand(num_beams, -1)             # [nb, V]
    cache.reorder(torch.zeros(num_beams, dtype=torch.long))
    V = last.shape[-1]
    beams: list[list[int]] = [[] for _ in range(num_beams)]
    scores = torch.tensor([0.0] + [-1e9] * (num_beams - 1), dtype=torch.float32)
    hyps: list[tuple[float, list[int], bool]] = []   # (score, ids, ended_on_eos)
    gaps: list[float] = []
    done = False

    def offer(score: float, ids: list[int], eos: bool):
        if len(hyps) < num_beams or score > min(h[0] for h in hyps):
            hyps.append((score, ids, eos))
            if len(hyps) > num_beams:
                hyps.remove(min(hyps, key=lambda h: h[0]))

    for step in range(max_new_tokens):
        cur_len = step + 1
        logp = F.log_softmax(last.float(), dim=-1)
        for b in range(num_beams):  # penalty on log-probs of this beam's generated ids
            if beams[b]:
                idx = torch.tensor(sorted(set(beams[b])))
                s = logp[b, idx]
                logp[b, idx] = torch.where(s < 0, s * repetition_penalty, s / repetition_penalty)
        cand = (logp + scores[:, None]).reshape(-1)
        top_s, top_i = torch.topk(cand, 2 * num_beams)
        nxt: list[tuple[float, int, int]] = []
        sel = top_s.tolist()
        for rank, (s, i) in enumerate(zip(sel, top_i.tolist())):
            b, t = divmod(i, V)
            if t == eos_id:
                if rank < num_beams:
                    offer(s / cur_len, list(beams[b]), True)
            else:
                nxt.append((s, b, t))
            if len(nxt) == num_beams:
                # diagnostic: score gap between the last candidate taken and the first one left out
                gaps.append(sel[rank] - sel[rank + 1] if rank + 1 < len(sel) else float('inf'))
                break
        if len(hyps) >= num_beams and min(h[0] for h in hyps) >= float(top_s.max()) / cur_len:
            done = True
        scores = torch.tensor([s for s, _, _ in nxt], dtype=torch.float32)
        beams = [beams[b] + [t] for _, b, t in nxt]
        cache.reorder(torch.tensor([b for _, b, _ in nxt]))
        if done or step + 1 == max_new_tokens:
            break
        last = _step(llm, llm.embed(torch.tensor([[t] for _, _, t in nxt])), cache)
    if not done:
        for b in range(num_beams):
            offer(float(scores[b]) / len(beams[b]), beams[b], False)
    ranked = sorted(hyps, key=lambda h: h[0])
    best = ranked[-1]
    info = {'best_score': best[0], 'selection_gap_min': min(gaps),
            'best_minus_second_final_score': best[0] - ranked[-2][0] if len(ranked) > 1 else None}
    return best[1] + ([eos_id] if best[2] else []), info


def mulberry32(seed: int):
    """The project's portable PRNG for `sample.ids` (src/model/rng.ts): JavaScript's mulberry32,
    u in [0,1) = uint32 / 2^32.
        a = (a + 0x6d2b79f5) >>> 0; t = Math.imul(a ^ (a >>> 15), a | 1);
        t ^= t + Math.imul(t ^ (t >>> 7), t | 61); return ((t ^ (t >>> 14)) >>> 0) / 4294967296;"""
    M = 0xFFFFFFFF
    state = [seed & M]

    def imul(a, b):
        return (a * b) & M

    def nxt() -> float:
        a = state[0] = (state[0] + 0x6D2B79F5) & M
        t = imul(a ^ (a >> 15), a | 1)
        t ^= (t + imul(t ^ (t >> 7), t | 61)) & M
        return ((t ^ (t >> 14)) & M) / 4294967296
    return nxt


def sample_step(logits: torch.Tensor, u: float, temperature: float, top_k: int, top_p: float):
    """One sampling step. Filtering: transformers 4.36 warpers in order temperature -> top-k -> top-p, in fp32.
    Draw (the project's portable rule, replacing torch.multinomial): weights w_i = exp(s_i - max s) in float64
    over the kept tokens, x = u * sum(w); walk the kept tokens from the highest score down (ties: higher id
    first), x -= w_i, return the first token where x <= 0.
    Returns (token, margins): distance of x from the nearest walk boundary relative to sum(w); distance of the
    top-p cut from 1 - top_p in cumulative probability; gap between the k-th and (k+1)-th scores (it only
    matters when top-p keeps all k); how many tokens were kept."""
    s = logits.float() / temperature
    k = min(top_k, s.numel())
    srt = torch.sort(s, descending=True).values
    kth = srt[k - 1]
    keep = s >= kth
    asc, order = torch.sort(s.masked_fill(~keep, float('-inf')), descending=False)
    cum = asc.softmax(-1).cumsum(-1)
    remove = cum <= (1 - top_p)
    remove[-1] = False  # min_tokens_to_keep = 1
    keep &= ~remove.scatter(0, order, remove)
    sd = s.double().numpy()
    kept = sorted((int(i) for i in np.nonzero(keep.numpy())[0]), key=lambda i: (-sd[i], -i))
    w = np.exp(sd[kept] - sd[kept[0]])
    x = u * float(w.sum())
    tok, margin = kept[-1], 0.0
    for i, wi in zip(kept, w):
        if x - wi <= 0:
            tok, margin = i, min(x, wi - x) / float(w.sum())
            break
        x -= wi
    finite = cum[torch.isfinite(asc)]
    margins = {'u': float(margin), 'top_p': float((finite - (1 - top_p)).abs().min()),
               'top_k': float(srt[k - 1] - srt[k]) if k < s.numel() else float('inf'), 'kept': len(kept)}
    return tok, margins


@torch.no_grad()
def sample(llm: MiniCPMForCausalLM, inputs_embeds: torch.Tensor, max_new_tokens: int, eos_id: int, seed: int,
           temperature: float = 0.6, top_k: int = 100, top_p: float = 0.8):
    """chat(sampling=True) defaults (SPEC 6), no repetition penalty, one mulberry32 draw per step.
    Stops after eos (kept). Returns ids and the smallest margins over all steps (see sample_step; `kept` is the
    largest number of tokens kept at one step)."""
    rng = mulberry32(seed)
    cache = KVCache(llm.cfg.num_hidden_layers)
    logits = _step(llm, inputs_embeds, cache)
    ids, margins = [], {'u': 1.0, 'top_p': 1.0, 'top_k': float('inf'), 'kept': 0}
    for _ in range(max_new_tokens):
        t, m = sample_step(logits[0], rng(), temperature, top_k, top_p)
        ids.append(t)
        margins = {k: (max if k == 'kept' else min)(v, m[k]) for k, v in margins.items()}
        if t == eos_id or len(ids) == max_new_tokens:
            break
        logits = _step(llm, llm.embed(torch.tensor([[t]])), cache)
    return ids, margins
