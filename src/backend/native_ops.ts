// The project's own TensorFlow ops (native/minicpmv_ops.cc: linear products on
// float32 or packed 16-bit weights, widening, the tensor reader, norms, softmax,
// bias+GELU, rotary, SwiGLU, attention over the KV cache, a whole decoder layer), built at install time against
// tfjs-node's libtensorflow. Loading the addon registers the ops in that
// TensorFlow runtime; this module then registers a TF.js kernel of the same
// name for each on the `tensorflow` backend, which runs it like tfjs-node runs
// its built-in ops. Node-only; the kernel names and the wrappers the layers
// call are in src/ops/native_kernels.ts, which imports TF.js alone.
import { createRequire } from 'node:module';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '../tfjs.ts';
import {
  BIAS_GELU, CACHED_ATTENTION, DECODER_LAYER, KV_GROW, LINEAR, NORM, READ_TENSOR, ROTARY, SOFTMAX, SWIGLU, WIDEN,
} from '../ops/native_kernels.ts';

export interface NativeOps {
  ok: boolean;
  /** e.g. "avx512, 2 threads", or why it is not available. */
  detail: string;
  /** The kernels registered for the tensorflow backend (empty when not available). */
  kernels: string[];
}

const addonPath = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'native', 'build', 'Release', 'minicpmv_ops.node');
let state: NativeOps | undefined;
let fileBacked: (() => number) | undefined;

/**
 * Bytes of the tensors that point into a checkpoint file's mapping (weights stored as the kernels take them,
 * 64-byte aligned in a file whose page cache maps as huge pages: native/minicpmv_ops.cc FileMap); 0 without
 * the native ops.
 */
export function fileBackedBytes(): number {
  return fileBacked ? fileBacked() : 0;
}

interface KernelBackend {
  executeSingleOutput(name: string, attrs: unknown[], inputs: tf.TensorInfo[]): tf.TensorInfo;
  executeMultipleOutputs(name: string, attrs: unknown[], inputs: tf.TensorInfo[], numOutputs: number): tf.TensorInfo[];
  binding: {
    TF_ATTR_STRING: number; TF_ATTR_INT: number; TF_ATTR_FLOAT: number; TF_ATTR_TYPE: number;
    TF_FLOAT: number; TF_INT32: number;
  };
}

type AttrType = 'string' | 'int' | 'float' | 'dtype';
const registered: string[] = [];

/**
 * A TF.js kernel that forwards its inputs (in this order) and attributes (with their TF types) to the op.
 * An input name ending in `*` is a list: the TF.js inputs `w0`, `w1`, ... (`N` of them, from the attribute
 * `N`), one output each.
 */
function registerOp(name: string, inputNames: string[], attrTypes: Record<string, AttrType>): void {
  registered.push(name);
  tf.registerKernel({
    kernelName: name,
    backendName: 'tensorflow',
    kernelFunc: ({ inputs, backend, attrs }) => {
      const b = backend as unknown as KernelBackend;
      const a = attrs as Record<string, unknown>;
      const type = { string: b.binding.TF_ATTR_STRING, int: b.binding.TF_ATTR_INT, float: b.binding.TF_ATTR_FLOAT, dtype: b.binding.TF_ATTR_TYPE };
      const opAttrs = Object.entries(attrTypes).map(([n, t]) => {
        const v = a[n];
        // A dtype attribute is given as a TF.js dtype name.
        const value = t === 'dtype' ? (v === 'int32' ? b.binding.TF_INT32 : v === 'float32' ? b.binding.TF_FLOAT : -1) : v;
        return { name: n, type: type[t], value };
      });
      const list = inputNames.find((n) => n.endsWith('*'));
      if (!list) return b.executeSingleOutput(name, opAttrs, inputNames.map((n) => inputs[n] as tf.TensorInfo));
      const count = a.N as number, stem = list.slice(0, -1);
      const flat = inputNames.flatMap((n) => (n === list ? Array.from({ length: count }, (_, i) => inputs[`${stem}${i}`]) : [inputs[n]]));
      return b.executeMultipleOutputs(name, opAttrs, flat as tf.TensorInfo[], count);
    },
  });
}

/** Loads the addon once (after tfjs-node) and registers the TF.js kernels. */
export function loadNativeOps(): NativeOps {
  if (state) return state;
  if (process.env.MINICPMV_NATIVE_OPS === '0') return (state = { ok: false, detail: 'disabled by MINICPMV_NATIVE_OPS=0', kernels: [] });
  if (!fs.existsSync(addonPath)) return (state = { ok: false, detail: 'native/ was not built (npm run build:ops)', kernels: [] });
  try {
    const addon = createRequire(import.meta.url)(addonPath) as {
      registered: boolean; error: string; isa: string; threads: number; fileBackedBytes: () => number;
    };
    if (!addon.registered) return (state = { ok: false, detail: `op registration failed: ${addon.error}`, kernels: [] });
    fileBacked = addon.fileBackedBytes;
    // Each TF.js kernel forwards its inputs (in this order) and attributes (with their TF types) to the op.
    const S = 'string', I = 'int', F = 'float', T = 'dtype';
    registerOp(LINEAR, ['x', 'w*'], { N: I, T, wtype: S });
    registerOp(WIDEN, ['x'], { wtype: S });
    registerOp(READ_TENSOR, [], { fd: I, file_id: S, size: I, offset: I, count: I, dtype: S, T, lazy: I });
    registerOp(NORM, ['x', 'w', 'b'], { kind: S, eps: F });
    registerOp(SOFTMAX, ['x'], {});
    registerOp(BIAS_GELU, ['x', 'b'], {});
    registerOp(ROTARY, ['x', 'cos', 'sin'], {});
    registerOp(CACHED_ATTENTION, ['q', 'k', 'v', 'kcache', 'vcache', 'idx'], { heads: I, scale: F });
    registerOp(KV_GROW, ['old', 'lo', 'hi'], { slots: I, capacity: I });
    registerOp(SWIGLU, ['g', 'u'], {});
    registerOp(DECODER_LAYER, ['h', 'ln1', 'wq', 'wk', 'wv', 'wo', 'ln2', 'wg', 'wu', 'wd', 'cos', 'sin', 'kcache', 'vcache', 'idx'],
      { T, wtype: S, eps: F, heads: I, scale: F, residual: F });
    return (state = { ok: true, detail: `${addon.isa}, ${addon.threads} threads`, kernels: registered });
  } catch (e) {
    return (state = { ok: false, detail: `cannot load ${path.basename(addonPath)}: ${(e as Error).message.split('\n')[0]}`, kernels: [] });
  }
}
