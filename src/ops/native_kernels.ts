// The project's own TensorFlow kernels (native/minicpmv_ops.cc) as TF.js calls.
// This module imports only TF.js: it names the kernels and wraps each one as
// `fooNative(...)`, which returns undefined wherever the kernel is not
// registered (the `cpu` backend, a browser, MINICPMV_NATIVE_OPS=0, native/ not
// built). Layers read `fooNative(...) ?? fooOps(...)`, the second being the
// reference in TF.js ops. Loading the addon and registering these kernels for
// the `tensorflow` backend is Node-only and lives in src/backend/native_ops.ts.
import * as tf from '../tfjs.ts';

export const LINEAR_ROWS = 'MiniCPMLinearRows';
export const READ_TENSOR = 'MiniCPMReadTensor';
export const NORM = 'MiniCPMNorm';
export const SOFTMAX = 'MiniCPMSoftmax';
export const BIAS_GELU = 'MiniCPMBiasGelu';
export const ROTARY = 'MiniCPMRotary';
/** Stored dtypes the native reader widens to float32. */
export const NATIVE_READ_DTYPES = new Set(['F32', 'BF16', 'F16']);
/** Most rows the rows kernel takes (decode steps and beams); more go to MatMul. */
export const LINEAR_ROWS_MAX = 8;

/** True when the active backend has this kernel. */
export const hasKernel = (name: string): boolean => tf.getKernel(name, tf.getBackend()) !== undefined;

/**
 * A native op refused its inputs or failed: one line, "MiniCPMFoo: what". (tfjs-node reports a failing
 * TensorFlow op as "Invalid TF_Status: 3\nMessage: ..."; the wrappers below keep the message only.)
 */
export class NativeOpError extends Error {
  override name = 'NativeOpError';
}

/** The op's own message out of a TensorFlow failure, on one line. */
export function nativeErrorMessage(e: unknown): string {
  const text = e instanceof Error ? e.message : String(e);
  const m = /(?:^|\n)Message: ([^\n]*)/.exec(text);
  return (m ? m[1] : text.split('\n').find((l) => l.trim() !== '') ?? text).trim();
}

/** Runs a native kernel; a failure is a one-line NativeOpError. (Exported for tests of the ops' own checks.) */
export function runNative(name: string, inputs: tf.NamedTensorMap, attrs: Record<string, unknown> = {}): tf.Tensor {
  try {
    return tf.engine().runKernel(name, inputs, attrs as unknown as tf.NamedAttrMap) as tf.Tensor;
  } catch (e) {
    if (e instanceof NativeOpError) throw e;
    const msg = nativeErrorMessage(e);
    throw new NativeOpError(msg.startsWith(name) ? msg : `${name}: ${msg}`);
  }
}

/** Runs a row kernel on x [..., D] as [R, D] and gives the result x's shape back. */
function rowwise(x: tf.Tensor, f: (x2: tf.Tensor) => tf.Tensor): tf.Tensor {
  if (x.rank === 2) return f(x);
  return tf.tidy(() => f(x.reshape([-1, x.shape[x.rank - 1]])).reshape(x.shape));
}

/**
 * x [R, in] · Wᵀ, W [out, in] as nn.Linear stores it, for R <= LINEAR_ROWS_MAX (decode steps, beams):
 * each weight row is streamed once for all rows, at the memory bandwidth. Undefined otherwise.
 */
export function linearRowsNative(x: tf.Tensor2D, weight: tf.Tensor2D): tf.Tensor2D | undefined {
  if (x.shape[0] > LINEAR_ROWS_MAX || !hasKernel(LINEAR_ROWS)) return undefined;
  return runNative(LINEAR_ROWS, { x, w: weight }) as tf.Tensor2D;
}

/**
 * Where a tensor's bytes are in an open file: the descriptor, the file's identity and size when it was
 * validated (fstat: "device:inode", bytes), the absolute byte offset, the stored dtype and element count.
 */
export interface FileTensor {
  fd: number;
  fileId: string;
  size: number;
  offset: number;
  dtype: string;
  count: number;
}

/**
 * A float32 tensor read by the native kernel straight from an open file (F32, BF16 or F16 at a byte
 * offset), or undefined where the kernel is not available. The kernel reads through `at.fd` and refuses a
 * file that is no longer the validated one (NativeOpError, one line).
 */
export function readTensorNative(at: FileTensor, shape: number[]): tf.Tensor | undefined {
  if (!NATIVE_READ_DTYPES.has(at.dtype) || !hasKernel(READ_TENSOR)) return undefined;
  for (const k of ['fd', 'size', 'offset', 'count'] as const) {
    if (!Number.isSafeInteger(at[k])) throw new NativeOpError(`${READ_TENSOR}: ${k} must be an integer, got ${at[k]}`);
  }
  const n = shape.reduce((a, b) => a * b, 1);
  if (n !== at.count) throw new NativeOpError(`${READ_TENSOR}: shape [${shape}] holds ${n} elements, not ${at.count}`);
  const attrs = { fd: at.fd, file_id: at.fileId, size: at.size, offset: at.offset, count: at.count, dtype: at.dtype };
  return tf.tidy(() => runNative(READ_TENSOR, {}, attrs).reshape(shape));
}

/**
 * LayerNorm ('layer', with bias) or MiniCPM's RMSNorm ('rms') over the last
 * dimension in one native pass per row, or undefined where not available.
 */
export function normNative(x: tf.Tensor, w: tf.Tensor, b: tf.Tensor | undefined, kind: 'layer' | 'rms', eps: number): tf.Tensor | undefined {
  if (!hasKernel(NORM)) return undefined;
  return rowwise(x, (x2) => runNative(NORM, { x: x2, w, b: b ?? w }, { kind, eps }));
}

/** Softmax over the last dimension in one native pass per row (both cores), or undefined where not available. */
export function softmaxNative(x: tf.Tensor): tf.Tensor | undefined {
  if (!hasKernel(SOFTMAX)) return undefined;
  return runNative(SOFTMAX, { x });
}

/** Exact-erf GELU of x + b (x [..., D], b [D]) in one native pass, or undefined where not available. */
export function biasGeluNative(x: tf.Tensor, b: tf.Tensor): tf.Tensor | undefined {
  if (!hasKernel(BIAS_GELU)) return undefined;
  return rowwise(x, (x2) => runNative(BIAS_GELU, { x: x2, b }));
}

/** x·cos + rotate_half(x)·sin for x [B, H, T, d] in one native pass, or undefined where not available. */
export function rotaryNative(x: tf.Tensor4D, cos: tf.Tensor2D, sin: tf.Tensor2D): tf.Tensor4D | undefined {
  if (!hasKernel(ROTARY)) return undefined;
  return runNative(ROTARY, { x, cos, sin }) as tf.Tensor4D;
}
