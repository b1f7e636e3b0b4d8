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
export const READ_TENSOR = 'MiniCPMReadTensor';
export const NORM = 'MiniCPMNorm';
export const SOFTMAX = 'MiniCPMSoftmax';
export const BIAS_GELU = 'MiniCPMBiasGelu';
export const ROTARY = 'MiniCPMRotary';
/** Stored dtypes the native reader widens to float32. */
export const NATIVE_READ_DTYPES = new Set(['F32', 'BF16', 'F16']);
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
  binding: { TF_ATTR_STRING: number; TF_ATTR_INT: number; TF_ATTR_FLOAT: number };
}

function registerOp(name: string, inputNames: string[], attrTypes: Record<string, 'string' | 'int' | 'float'>): void {
  tf.registerKernel({
    kernelName: name,
    backendName: 'tensorflow',
    kernelFunc: ({ inputs, backend, attrs }) => {
      const b = backend as unknown as KernelBackend;
      const type = { string: b.binding.TF_ATTR_STRING, int: b.binding.TF_ATTR_INT, float: b.binding.TF_ATTR_FLOAT };
      const opAttrs = Object.entries(attrTypes).map(([n, t]) => ({ name: n, type: type[t], value: (attrs as Record<string, unknown>)[n] }));
      return b.executeSingleOutput(name, opAttrs, inputNames.map((n) => inputs[n] as tf.TensorInfo));
    },
  });
}

/** Loads the addon once (after tfjs-node) and registers the TF.js kernels. */
export function loadNativeOps(): NativeOps {
  if (state) return state;
  if (process.env.MINICPMV_NATIVE_OPS === '0') return (state = { ok: false, detail: 'disabled by MINICPMV_NATIVE_OPS=0' });
  if (!fs.existsSync(addonPath)) return (state = { ok: false, detail: 'native/ was not built (npm run build:ops)' });
  try {
    // OpenMP's idle threads spin for a while after each parallel region (libgomp: 300,000 polls), taking
    // the cores from the TensorFlow kernel that runs next (measured: prefill 43 -> 36 tok/s), while never
    // spinning costs a thread wake-up per op (decode 455 -> 487 ms/token). A short spin keeps the back-to-back
    // decode ops warm and frees the cores within tens of microseconds. libgomp reads this when it loads.
    if (process.env.OMP_WAIT_POLICY === undefined) process.env.GOMP_SPINCOUNT ??= '30000';
    const addon = createRequire(import.meta.url)(addonPath) as { registered: boolean; error: string; isa: string; threads: number };
    if (!addon.registered) return (state = { ok: false, detail: `op registration failed: ${addon.error}` });
    // Each TF.js kernel forwards its inputs (in this order) and attributes (with their TF types) to the op.
    const S = 'string', I = 'int', F = 'float';
    registerOp(LINEAR_ROWS, ['x', 'w'], {});
    registerOp(READ_TENSOR, [], { path: S, offset: I, count: I, dtype: S });
    registerOp(NORM, ['x', 'w', 'b'], { kind: S, eps: F });
    registerOp(SOFTMAX, ['x'], {});
    registerOp(BIAS_GELU, ['x', 'b'], {});
    registerOp(ROTARY, ['x', 'cos', 'sin'], {});
    return (state = { ok: true, detail: `${addon.isa}, ${addon.threads} threads` });
  } catch (e) {
    return (state = { ok: false, detail: `cannot load ${path.basename(addonPath)}: ${(e as Error).message.split('\n')[0]}` });
  }
}

/**
 * A float32 tensor read by the native kernel straight from a file (F32, BF16
 * or F16 at a byte offset), or undefined where the kernel is not available.
 */
export function readTensorNative(file: string, offset: number, count: number, dtype: string, shape: number[]): tf.Tensor | undefined {
  if (!NATIVE_READ_DTYPES.has(dtype) || tf.getKernel(READ_TENSOR, tf.getBackend()) === undefined) return undefined;
  return tf.tidy(() => {
    const flat = tf.engine().runKernel(READ_TENSOR, {}, { path: file, offset, count, dtype } as unknown as tf.NamedAttrMap) as tf.Tensor;
    return flat.reshape(shape);
  });
}

/**
 * LayerNorm ('layer', with bias) or MiniCPM's RMSNorm ('rms') over the last
 * dimension in one native pass, or undefined where the kernel is not available.
 */
export function normNative(x: tf.Tensor, w: tf.Tensor, b: tf.Tensor | undefined, kind: 'layer' | 'rms', eps: number): tf.Tensor | undefined {
  if (tf.getKernel(NORM, tf.getBackend()) === undefined) return undefined;
  return tf.tidy(() => {
    const D = x.shape[x.rank - 1];
    const x2 = x.rank === 2 ? x : x.reshape([-1, D]);
    const y = tf.engine().runKernel(NORM, { x: x2, w, b: b ?? w }, { kind, eps } as unknown as tf.NamedAttrMap) as tf.Tensor;
    return x.rank === 2 ? y : y.reshape(x.shape);
  });
}

/** Softmax over the last dimension in one native pass per row (both cores), or undefined where not available. */
export function softmaxNative(x: tf.Tensor): tf.Tensor | undefined {
  if (tf.getKernel(SOFTMAX, tf.getBackend()) === undefined) return undefined;
  return tf.engine().runKernel(SOFTMAX, { x }) as tf.Tensor;
}

/** Exact-erf GELU of x + b (x [R, D] or [..., D], b [D]) in one native pass, or undefined where not available. */
export function biasGeluNative(x: tf.Tensor, b: tf.Tensor): tf.Tensor | undefined {
  if (tf.getKernel(BIAS_GELU, tf.getBackend()) === undefined) return undefined;
  return tf.tidy(() => {
    const D = x.shape[x.rank - 1];
    const y = tf.engine().runKernel(BIAS_GELU, { x: x.rank === 2 ? x : x.reshape([-1, D]), b }) as tf.Tensor;
    return x.rank === 2 ? y : y.reshape(x.shape);
  });
}

/** x·cos + rotate_half(x)·sin for x [B, H, T, d] in one native pass, or undefined where not available. */
export function rotaryNative(x: tf.Tensor4D, cos: tf.Tensor2D, sin: tf.Tensor2D): tf.Tensor4D | undefined {
  if (tf.getKernel(ROTARY, tf.getBackend()) === undefined) return undefined;
  return tf.engine().runKernel(ROTARY, { x, cos, sin }) as tf.Tensor4D;
}
