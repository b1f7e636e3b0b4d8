// `inspect --compare DUMP`: each hook's activation is compared with the dump's tensor of the same key as the
// forward pass produces it (nothing is kept but the result), under the project's one tolerance policy
// (src/parity/tolerances.ts, compareTensors of src/parity/compare.ts). A dump of another model is refused
// before the weights load: a block or layer this model lacks, or a hook whose shape differs other than in
// the prompt length.
import fs from 'node:fs';
import type { MiniCPMVConfig } from '../config.ts';
import { CompareError, compareTensors, type KeyResult } from '../parity/compare.ts';
import { compareModelOrder, modelOrder } from '../parity/globs.ts';
import { isIntegerKeyName, POLICY, toleranceFor } from '../parity/tolerances.ts';
import { SafetensorsError, SafetensorsFile, type STDtype } from '../weights/safetensors.ts';
import { hookShapes, isSequenceKey } from './shapes.ts';

const INTEGER_DTYPES = new Set<STDtype>(['I64', 'I32', 'I16', 'I8', 'U8', 'BOOL']);

export interface DivergenceReport {
  file: string;
  policy: string;
  /** Hook keys present in the dump, compared, in model order. */
  results: KeyResult[];
  firstFailure: string | null;
  /** Dump keys that are not hook points of this run (ids of generation, image_bound, ...). */
  notCompared: string[];
  /** Hook points of this run the dump lacks. */
  missing: string[];
}

const fmt = (s: readonly number[]) => `[${s.join(', ')}]`;

export class DumpComparer {
  private readonly results = new Map<string, KeyResult>();

  private constructor(readonly path: string, private readonly file: SafetensorsFile, private readonly hooks: Map<string, number[]>,
    private readonly positions: number[] | undefined) {}

  /**
   * Opens and checks a dump against this model (config) and prompt length; every problem is a CompareError
   * naming the file (one line for the CLI).
   */
  static open(path: string, cfg: MiniCPMVConfig, promptLength: number): DumpComparer {
    let st: fs.Stats;
    try {
      st = fs.statSync(path);
    } catch {
      throw new CompareError(`--compare ${path}: no such file`);
    }
    if (!st.isFile()) throw new CompareError(`--compare ${path}: not a regular file`);
    let f: SafetensorsFile;
    try {
      f = SafetensorsFile.open(path);
    } catch (e) {
      if (e instanceof SafetensorsError) throw new CompareError(`--compare: cannot read the dump: ${e.message}`);
      throw e;
    }
    try {
      const hooks = hookShapes(cfg, promptLength);
      const other = (why: string) => new CompareError(`--compare ${path} is a dump of another model: ${why}`);
      for (const key of f.keys()) {
        const block = /^vpm\.blocks\.(\d+)(\.|$)/.exec(key), layer = /^llm\.model\.layers\.(\d+)(\.|$)/.exec(key);
        if (block && Number(block[1]) >= cfg.vision.blocksRun) throw other(`it has ${key}; this model runs ${cfg.vision.blocksRun} vision blocks`);
        if (layer && Number(layer[1]) >= cfg.llm.numLayers) throw other(`it has ${key}; this model has ${cfg.llm.numLayers} decoder layers`);
      }
      const shared = f.keys().filter((k) => hooks.has(k));
      if (!shared.length) {
        throw new CompareError(`--compare ${path}: none of its ${f.keys().length} keys is a hook point of this model ` +
          `(${f.keys().slice(0, 3).join(', ')}${f.keys().length > 3 ? ', ...' : ''}); expected keys such as vpm.norm, resampler, llm.model.layers.0`);
      }
      const positions = f.has('logits.positions') ? Array.from(f.readInt32('logits.positions')) : undefined;
      for (const key of shared) {
        const want = hooks.get(key)!, got = f.info(key).shape;
        // The prompt length may differ (another prompt): that shows as FAIL(shape) in the overlay; any other
        // dimension is the model's own (hidden size, heads, vocabulary, patches).
        const masked = (s: number[]) => s.map((d, i) => (i === 1 && isSequenceKey(key) ? -1 : d));
        if (got.length !== want.length || masked(got).some((d, i) => d !== masked(want)[i])) {
          throw other(`${key} has shape ${fmt(got)} there, this model gives ${fmt(want)}`);
        }
      }
      if (positions && positions.some((p) => !Number.isInteger(p) || p < 0)) {
        throw new CompareError(`--compare ${path}: logits.positions holds an invalid position`);
      }
      return new DumpComparer(path, f, hooks, positions);
    } catch (e) {
      f.close();
      throw e;
    }
  }

  /** True when the dump holds this key (so the caller reads the activation's data). */
  has(key: string): boolean {
    return this.hooks.has(key) && this.file.has(key);
  }

  /** Compares one activation (row-major data of `shape`) with the dump; call from the hook. */
  compare(key: string, data: Float32Array | Int32Array, shape: readonly number[]): void {
    if (!this.has(key)) return;
    const info = this.file.info(key);
    const integer = INTEGER_DTYPES.has(info.dtype) || isIntegerKeyName(key);
    let actual = data, actualShape = [...shape];
    if (key === 'logits' && this.positions && shape.length === 3) {
      // dump_activations.py --logits-last N stores the rows at logits.positions only.
      const [, L, V] = shape;
      if (this.positions.every((p) => p < L)) {
        const rows = new Float32Array(this.positions.length * V);
        this.positions.forEach((p, i) => rows.set(data.subarray(p * V, (p + 1) * V), i * V));
        actual = rows;
        actualShape = [1, this.positions.length, V];
      }
    }
    const expected = integer && INTEGER_DTYPES.has(info.dtype) ? this.file.readInt32(key) : this.file.readFloat32(key);
    const r = compareTensors(key, actual, expected, actualShape, info.shape, toleranceFor(key),
      { integer, dtypeA: data instanceof Int32Array ? 'I32' : 'F32', dtypeB: info.dtype });
    this.results.set(key, r);
  }

  /** The overlay's data: results in model order and the first failing key. */
  report(): DivergenceReport {
    const results = [...this.results.values()].sort((a, b) => compareModelOrder(a.key, b.key));
    return {
      file: this.path, policy: POLICY, results, firstFailure: results.find((r) => !r.pass)?.key ?? null,
      notCompared: modelOrder(this.file.keys().filter((k) => !this.hooks.has(k))),
      missing: [...this.hooks.keys()].filter((k) => !this.file.has(k)),
    };
  }

  close(): void {
    this.file.close();
  }
}
