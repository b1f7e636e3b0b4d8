// A weight that is NaN or Inf is refused at load with its name (one NaN in llm.model.norm.weight used to
// give exit 0 and an empty answer). The native reader checks each piece as it reads it (F32, BF16 widened,
// BF16/F16 kept packed); the JavaScript path scans the array it uploads. Both say the same thing.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import * as tf from '../src/tfjs.ts';
import { expectedTensors } from '../src/config.ts';
import { loadConfig } from '../src/config_file.ts';
import { initBackend, nativeAvailable } from '../src/backend/index.ts';
import { loadNativeOps } from '../src/backend/native_ops.ts';
import { BUNDLED_MODEL_DIR, loadModel } from '../src/model/load.ts';
import { openCheckpoint } from '../src/weights/checkpoint.ts';
import { WeightsError } from '../src/weights/loader.ts';
import { writeSafetensors, type TensorToWrite } from '../src/weights/safetensors_writer.ts';
import { cli } from './helpers/cli.ts';
import { repoRoot } from './helpers/paths.ts';
import { named, requirement, unmet } from './helpers/requires.ts';

const native = nativeAvailable();
const ops = native.ok ? loadNativeOps() : undefined;
const opsReq = requirement(ops?.ok === true, native.ok ? `the project's native ops do not load (${ops?.detail})`
  : `the native tensorflow backend does not load (${native.reason})`);

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'finite-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const cfg = loadConfig(path.join(BUNDLED_MODEL_DIR, 'config.json'));
const bundled = openCheckpoint(BUNDLED_MODEL_DIR);
const good = new Map(expectedTensors(cfg).map((t) => [t.key, bundled.readFloat32(t.key)]));
bundled.close();

/** The bundled tiny model in `dtype`, with `bad` values written at flat indices; returns its directory. */
function checkpoint(name: string, dtype: 'F32' | 'BF16' | 'F16', bad: Record<string, [number, number][]>): string {
  const dir = path.join(tmp, name);
  fs.mkdirSync(dir);
  for (const f of ['config.json', 'tokenizer.model']) fs.copyFileSync(path.join(BUNDLED_MODEL_DIR, f), path.join(dir, f));
  const ts = expectedTensors(cfg).map((t): TensorToWrite => {
    const data = Float32Array.from(good.get(t.key)!);
    for (const [i, v] of bad[t.key] ?? []) data[i] = v;
    return { name: t.key, dtype, shape: t.shape, data };
  });
  writeSafetensors(path.join(dir, 'model.safetensors'), ts);
  return dir;
}

function loadError(dir: string, opts: Parameters<typeof loadModel>[1] = {}): WeightsError {
  const before = tf.memory().numTensors;
  try {
    loadModel(dir, opts).dispose();
  } catch (e) {
    expect(e).toBeInstanceOf(WeightsError);
    expect(tf.memory().numTensors, 'the tensors read before the bad one are freed').toBe(before);
    return e as WeightsError;
  }
  throw new Error(`${dir}: loaded without an error`);
}

const UP = 'llm.model.layers.1.mlp.up_proj.weight'; // a weight matrix: kept packed when bf16/f16 and the kernels load
const NORM = 'llm.model.norm.weight'; // a vector: always widened
const cases: [string, 'F32' | 'BF16' | 'F16', Record<string, [number, number][]>, RegExp][] = [
  ['f32 matrix', 'F32', { [UP]: [[77, NaN], [90, Infinity], [5000, NaN]] },
    new RegExp(`: weights must be finite: ${UP.replace(/\./g, '\\.')}: 3 non-finite value\\(s\\), first NaN at flat index 77 \\(in model\\.safetensors\\)$`)],
  ['bf16 matrix', 'BF16', { [UP]: [[3, -Infinity], [100, NaN]] },
    /: weights must be finite: llm\.model\.layers\.1\.mlp\.up_proj\.weight: 2 non-finite value\(s\), first -Infinity at flat index 3 \(in model\.safetensors\)$/],
  ['f16 matrix', 'F16', { [UP]: [[11, Infinity]] },
    /: llm\.model\.layers\.1\.mlp\.up_proj\.weight: 1 non-finite value\(s\), first Infinity at flat index 11 \(in model\.safetensors\)$/],
  ['bf16 norm (the fuzzing reproducer)', 'BF16', { [NORM]: [[0, NaN]] },
    /: llm\.model\.norm\.weight: 1 non-finite value\(s\), first NaN at flat index 0 \(in model\.safetensors\)$/],
];

describe('non-finite weights are refused at load, with the tensor\'s name', () => {
  const dirs = new Map(cases.map(([name, dtype, bad]) => [name, checkpoint(name.replace(/\W+/g, '-'), dtype, bad)]));

  it('on the cpu backend (the JavaScript scan)', async () => {
    await initBackend('cpu');
    for (const [name, , , re] of cases) expect(loadError(dirs.get(name)!).message, name).toMatch(re);
  });

  it.skipIf(unmet(opsReq))(named('on the tensorflow backend (the native reader, packed and widened), saying the same', opsReq), async () => {
    await initBackend('tensorflow');
    for (const [name, , , re] of cases) {
      for (const weightsDtype of ['auto', 'f32'] as const) {
        const e = loadError(dirs.get(name)!, { weightsDtype });
        expect(e.message, `${name}, ${weightsDtype}`).toMatch(re);
        expect(e.details).toEqual([e.message.slice(e.message.indexOf('weights must be finite: ') + 24)]);
      }
    }
  });

  it('a finite checkpoint with extreme values loads (the largest finite bf16, f16 and f32, and subnormals)', async () => {
    const extremes = { [UP]: [[0, 65504], [1, -65504], [2, 6e-8], [3, 3.3895313892515355e38]] as [number, number][] };
    const dir = checkpoint('extremes-f32', 'F32', extremes);
    for (const b of opsReq.ok ? ['cpu', 'tensorflow'] : ['cpu']) {
      await initBackend(b);
      const m = loadModel(dir);
      m.dispose();
    }
  });

  it('the CLI: exit 2 and one line naming the tensor, not exit 0 and an empty answer', () => {
    const r = cli(['chat', '--model', dirs.get('bf16 norm (the fuzzing reproducer)')!, '--image', path.join(repoRoot, 'examples', 'red_ball.png'), '--prompt', 'hi', '-n', '4']);
    expect(r.code, r.stderr).toBe(2);
    expect(r.stdout).toBe('');
    const lines = r.stderr.trim().split('\n').filter((l) => !/^backend:/.test(l));
    expect(lines.join('\n')).toMatch(/llm\.model\.norm\.weight: 1 non-finite value\(s\), first NaN at flat index 0/);
    expect(lines.filter((l) => /non-finite/.test(l))).toHaveLength(1);
  });
});
