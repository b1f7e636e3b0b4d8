// The project's own TensorFlow kernel (native/minicpmv_ops.cc), built at
// install time against tfjs-node's libtensorflow. Loading the addon registers
// the op `MiniCPMLinearRows` in that TensorFlow runtime; this module then
// registers a TF.js kernel of the same name for the `tensorflow` backend, which
// runs it like tfjs-node runs its built-in ops.
import { createRequire } from 'node:module';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '../tfjs.ts';

export const LINEAR_ROWS = 'MiniCPMLinearRows';
/** Most rows the kernel takes (decode steps and beams); more go to MatMul. */
export const LINEAR_ROWS_MAX = 8;

export interface NativeOps {
  ok: boolean;
  /** e.g. "avx2+fma, 2 threads", or why it is not available. */
  detail: string;
}

const addonPath = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'native', 'build', 'Release', 'minicpmv_ops.node');
let state: NativeOps | undefined;

interface KernelBackend {
  executeSingleOutput(name: string, attrs: unknown[], inputs: tf.TensorInfo[]): tf.TensorInfo;
}

/** Loads the addon once (after tfjs-node) and registers the TF.js kernel. */
export function loadNativeOps(): NativeOps {
  if (state) return state;
  if (process.env.MINICPMV_NATIVE_OPS === '0') return (state = { ok: false, detail: 'disabled by MINICPMV_NATIVE_OPS=0' });
  if (!fs.existsSync(addonPath)) return (state = { ok: false, detail: 'native/ was not built (npm run build:ops)' });
  try {
    const addon = createRequire(import.meta.url)(addonPath) as { registered: boolean; error: string; isa: string; threads: number };
    if (!addon.registered) return (state = { ok: false, detail: `op registration failed: ${addon.error}` });
    tf.registerKernel({
      kernelName: LINEAR_ROWS,
      backendName: 'tensorflow',
      kernelFunc: ({ inputs, backend }) =>
        (backend as unknown as KernelBackend).executeSingleOutput(LINEAR_ROWS, [], [inputs.x as tf.TensorInfo, inputs.w as tf.TensorInfo]),
    });
    return (state = { ok: true, detail: `${addon.isa}, ${addon.threads} threads` });
  } catch (e) {
    return (state = { ok: false, detail: `cannot load ${path.basename(addonPath)}: ${(e as Error).message.split('\n')[0]}` });
  }
}
