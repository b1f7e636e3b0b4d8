import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ConfigError, expectedTensors, parseConfig, tinyConfigJson } from '../src/config.ts';
import { loadConfig } from '../src/config_file.ts';
import { SafetensorsFile } from '../src/weights/safetensors.ts';
import { named, shared, unmet } from './helpers/requires.ts';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const sharedDir = path.resolve(repoRoot, '..', 'shared');
const realConfig = path.join(sharedDir, 'reference', 'config.json');
const realIndex = path.join(sharedDir, 'reference', 'model.safetensors.index.json');
const tinyDir = path.join(sharedDir, 'golden', 'tiny-a');
const real = [shared('reference', 'config.json'), shared('reference', 'model.safetensors.index.json')];
const goldenTiny = shared('golden', 'tiny-a', 'model.safetensors');

function expectConfigError(fn: () => unknown, ...parts: (string | RegExp)[]): void {
  let err: unknown;
  try { fn(); } catch (e) { err = e; }
  expect(err).toBeInstanceOf(ConfigError);
  for (const p of parts) expect((err as Error).message).toMatch(p);
}

describe.skipIf(unmet(...real))(named('real MiniCPM-V v1 config', ...real), () => {
  it('derives the SPEC sizes and scalings', () => {
    const cfg = loadConfig(realConfig);
    expect(cfg.vision).toEqual({ embedDim: 1152, depth: 27, blocksRun: 26, numHeads: 16, headDim: 72, mlpHidden: 4304,
      patchSize: 14, posGrid: 27, imageSize: 448, eps: 1e-6 });
    expect(cfg.resampler).toEqual({ numQueries: 64, gridSize: 8, embedDim: 2304, numHeads: 18, kvDim: 1152, eps: 1e-6 });
    const l = cfg.llm;
    expect([l.hidden, l.numLayers, l.numHeads, l.numKvHeads, l.headDim, l.intermediate, l.vocab, l.maxPositions])
      .toEqual([2304, 40, 36, 36, 64, 5760, 122753, 2048]);
    expect([l.ropeTheta, l.rmsEps, l.scaleEmb, l.dimModelBase, l.scaleDepth, l.bosId, l.eosId])
      .toEqual([10000, 1e-5, 12, 256, 1.4, 1, 2]);
    expect(l.residualScale).toBeCloseTo(0.2213594362117866, 15); // SPEC §4
    expect(l.logitDivisor).toBe(9);
    expect(cfg.dropVisionLastLayer).toBe(true);
  });

  it('expectedTensors equals the real index: 694 keys, total_size = 2 bytes x params', () => {
    const cfg = loadConfig(realConfig);
    const index = JSON.parse(fs.readFileSync(realIndex, 'utf8'));
    const exp = expectedTensors(cfg);
    expect(exp.length).toBe(694);
    expect(exp.map((t) => t.key).sort()).toEqual(Object.keys(index.weight_map).sort());
    const params = exp.reduce((s, t) => s + t.shape.reduce((a, b) => a * b, 1), 0);
    expect(params).toBe(3_434_965_792);
    expect(params * 2).toBe(index.metadata.total_size);
    expect(new Set(exp.map((t) => t.role))).toEqual(new Set(['vision', 'resampler', 'llm']));
    expect(exp.find((t) => t.key === 'vpm.blocks.25.mlp.fc1.weight')?.shape).toEqual([4304, 1152]);
    expect(exp.some((t) => t.key.startsWith('vpm.blocks.26.'))).toBe(false);
  });
});

describe.skipIf(unmet(goldenTiny))(named('golden tiny-a config', goldenTiny), () => {
  it('expectedTensors equals the keys and shapes of the golden checkpoint', () => {
    const cfg = loadConfig(path.join(tinyDir, 'config.json'));
    expect(cfg.vision.mlpHidden).toBe(358);
    expect(cfg.vision.blocksRun).toBe(2);
    expect(cfg.resampler.numHeads).toBe(2);
    expect(cfg.llm.logitDivisor).toBe(8);
    expect(cfg.llm.residualScale).toBeCloseTo(0.989949, 6); // README: 1.4 / sqrt(2)
    const f = SafetensorsFile.open(path.join(tinyDir, 'model.safetensors'));
    const exp = expectedTensors(cfg);
    expect(exp.map((t) => t.key).sort()).toEqual(f.keys().sort());
    for (const t of exp) expect(f.info(t.key).shape, t.key).toEqual(t.shape);
    f.close();
  });
});

describe('parseConfig', () => {
  it('tiny preset parses; vision sizes from explicit keys; drop_vision_last_layer false keeps every block', () => {
    const cfg = parseConfig(tinyConfigJson(), 'tiny');
    expect(cfg.vision.mlpHidden).toBe(119); // int(32 * 3.7362)
    expect(cfg.vision.blocksRun).toBe(2);
    expect(parseConfig(tinyConfigJson({ drop_vision_last_layer: false })).vision.blocksRun).toBe(3);
    const { vision_mlp_hidden_dim: _, ...onlyRatio } = tinyConfigJson();
    expect(parseConfig(onlyRatio).vision.mlpHidden).toBe(119);
    const gqa = parseConfig(tinyConfigJson({ num_key_value_heads: 1 }));
    expect(expectedTensors(gqa).find((t) => t.key === 'llm.model.layers.0.self_attn.k_proj.weight')?.shape).toEqual([64, 128]);
  });

  it('HF defaults apply to optional keys', () => {
    const { rms_norm_eps: _a, rope_theta: _b, num_key_value_heads: _c, scale_emb: _d, ...rest } = tinyConfigJson();
    const l = parseConfig(rest).llm;
    expect([l.rmsEps, l.ropeTheta, l.numKvHeads, l.scaleEmb]).toEqual([1e-6, 10000, 2, 1]);
  });

  it('bad values are ConfigErrors naming the source and key', () => {
    const { hidden_size: _, ...noHidden } = tinyConfigJson();
    expectConfigError(() => parseConfig(noHidden, 'my.json'), 'my.json', 'required key "hidden_size"');
    expectConfigError(() => parseConfig(tinyConfigJson({ num_hidden_layers: '2' }), 'c.json'), 'c.json', '"num_hidden_layers"', 'integer');
    expectConfigError(() => parseConfig(tinyConfigJson({ num_attention_heads: 3 })), 'not divisible by "num_attention_heads" 3');
    expectConfigError(() => parseConfig(tinyConfigJson({ vision_encoder: 'vit_base_patch16_224' })), '"vision_encoder"', 'vit_base_patch16_224', 'not a known');
    expectConfigError(() => parseConfig(tinyConfigJson({ rope_scaling: { type: 'linear', factor: 2.0 } })), '"rope_scaling"');
    expectConfigError(() => parseConfig(tinyConfigJson({ tie_word_embeddings: true })), '"tie_word_embeddings"');
    expectConfigError(() => parseConfig(tinyConfigJson({ query_num: 60 })), '"query_num" 60', 'perfect square');
    expectConfigError(() => parseConfig(tinyConfigJson({ hidden_size: 64, num_attention_heads: 1, num_key_value_heads: 1 })), 'resampler heads');
    expectConfigError(() => parseConfig(tinyConfigJson({ vision_mlp_hidden_dim: 120 })), 'disagrees');
    expectConfigError(() => parseConfig(tinyConfigJson({ vision_depth: 1 })), 'no block to run');
    expectConfigError(() => parseConfig(tinyConfigJson({ version: 2.0 })), 'MiniCPM-V 2.x');
    expectConfigError(() => parseConfig(tinyConfigJson({ model_type: 'llama' })), '"model_type"');
    expectConfigError(() => parseConfig(tinyConfigJson({ eos_token_id: 512 })), 'outside the vocabulary');
    expectConfigError(() => parseConfig([1]), 'must be a JSON object');
  });

  it('loadConfig names the file for unreadable or invalid JSON', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cfg-test-'));
    try {
      expectConfigError(() => loadConfig(path.join(dir, 'missing.json')), 'missing.json', 'does not exist');
      expectConfigError(() => loadConfig(dir), 'is a directory, not a regular file');
      expectConfigError(() => loadConfig('/dev/zero'), 'config /dev/zero is a character device, not a regular file');
      const huge = path.join(dir, 'huge.json');
      fs.writeFileSync(huge, '');
      fs.truncateSync(huge, 17 * 2 ** 20); // sparse: no disk used
      expectConfigError(() => loadConfig(huge), 'huge.json is 17 MiB, more than the 16 MiB');
      const bad = path.join(dir, 'bad.json');
      fs.writeFileSync(bad, '{"hidden_size": 12,');
      expectConfigError(() => loadConfig(bad), 'bad.json', 'not valid JSON');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('config values are range-checked before anything is sized from them', () => {
  const bad = (overrides: Record<string, unknown>, ...parts: (string | RegExp)[]) => {
    let err: unknown;
    try { parseConfig(tinyConfigJson(overrides), 'c.json'); } catch (e) { err = e; }
    expect(err, JSON.stringify(overrides)).toBeInstanceOf(ConfigError);
    const msg = (err as Error).message;
    expect(msg).not.toContain('\n');
    for (const p of parts) expect(msg).toMatch(p);
  };

  it('layer counts: the issue\'s 2147483648 and 50,000,000 fail on their key, LLM and vision alike', () => {
    bad({ num_hidden_layers: 2147483648 }, 'c.json: "num_hidden_layers" must be an integer in 1..1024, got 2147483648');
    bad({ num_hidden_layers: 50_000_000 }, '"num_hidden_layers"', '1..1024');
    bad({ vision_depth: 50_000_000 }, '"vision_depth" must be an integer in 1..1024');
    bad({ vision_depth: 2147483648 }, '"vision_depth"');
    expect(expectedTensors(parseConfig(tinyConfigJson({ num_hidden_layers: 1024 }))).length).toBeGreaterThan(9 * 1024);
  });

  it('image_size is 1..449 with patch 14', () => {
    for (const v of [2147483648, 10000, 5000, 450, 0, -1, 448.5]) bad({ image_size: v }, '"image_size" must be an integer in 1..449', 'patch 14');
    for (const v of [1, 13, 14, 448, 449]) expect(parseConfig(tinyConfigJson({ image_size: v })).vision.imageSize).toBe(v);
  });

  it('norm eps, RoPE base and scales: absurd values are refused', () => {
    for (const v of [0, -1e-6, 1e-300, 1e-13, 0.5, 1e30]) bad({ rms_norm_eps: v }, '"rms_norm_eps" must be a number in [1e-12, 0.1]');
    expect(parseConfig(tinyConfigJson({ rms_norm_eps: 1e-12 })).llm.rmsEps).toBe(1e-12);
    for (const v of [0, 0.5, 1, -10000, 1e300]) bad({ rope_theta: v }, '"rope_theta" must be a number in (1, 10000000000]');
    expect(parseConfig(tinyConfigJson({ rope_theta: 1e6 })).llm.ropeTheta).toBe(1e6);
    bad({ scale_emb: 1e300 }, '"scale_emb" must be a number in (0, 1000000]');
    bad({ dim_model_base: 1e300 }, '"dim_model_base"');
    bad({ scale_depth: 0 }, '"scale_depth"');
    bad({ initializer_range: 1e300 }, '"initializer_range"');
    bad({ max_position_embeddings: 2 ** 40 }, '"max_position_embeddings" must be an integer in 1..2147483647');
  });

  it('head counts must divide the widths; every MLP has a unit', () => {
    bad({ num_attention_heads: 3 }, 'not divisible by "num_attention_heads" 3');
    bad({ num_key_value_heads: 4 }, '"num_attention_heads" 2 is not a multiple of "num_key_value_heads" 4');
    bad({ vision_num_heads: 5 }, '"vision_embed_dim" 32 is not divisible by "vision_num_heads" 5');
    const { vision_mlp_hidden_dim: _, ...ratioOnly } = tinyConfigJson({ vision_mlp_ratio: 1e-9 });
    expectConfigError(() => parseConfig(ratioOnly), 'MLP of int(32 * ratio) = 0 units');
  });

  it('query_num must let the image fit the 2048-token prompt; no tensor may outgrow a typed array', () => {
    bad({ query_num: 2116 }, '"query_num" must be an integer in 1..2025');
    bad({ query_num: 2 ** 40 }, '"query_num"');
    expect(parseConfig(tinyConfigJson({ query_num: 2025 })).resampler.gridSize).toBe(45);
    bad({ vocab_size: 2 ** 40 }, 'llm.model.embed_tokens.weight the shape [1099511627776, 128]', 'at most 2147483647');
    bad({ intermediate_size: 2 ** 30 }, 'mlp.gate_proj.weight');
    bad({ hidden_size: 2 ** 20 * 128, num_attention_heads: 2 }, 'elements; one tensor can hold at most');
  });
});
