// The project's own TensorFlow kernels (native/minicpmv_ops.cc) as TF.js calls.
// This module imports only TF.js: it names the kernels and wraps each one as
// `fooNative(...)`, which returns undefined wherever the kernel is not
// registered (the `cpu` backend, a browser, MINICPMV_NATIVE_OPS=0, native/ not
// built). Layers read `fooNative(...) ?? fooOps(...)`, the second being the
// reference in TF.js ops. Loading the addon and registering these kernels for
// the `tensorflow` backend is Node-only and lives in src/backend/native_ops.ts.
import * as tf from '../tfjs.ts';
import { PackedWeight, type PackedDtype, type Weight } from './packed_weight.ts';

export const LINEAR = 'MiniCPMLinear';
export const WIDEN = 'MiniCPMWiden';
export const READ_TENSOR = 'MiniCPMReadTensor';
export const NORM = 'MiniCPMNorm';
export const SOFTMAX = 'MiniCPMSoftmax';
export const BIAS_GELU = 'MiniCPMBiasGelu';
export const ROTARY = 'MiniCPMRotary';
export const CACHED_ATTENTION = 'MiniCPMCachedAttention';
export const KV_GROW = 'MiniCPMKVGrow';
export const SWIGLU = 'MiniCPMSwiGLU';
export const DECODER_LAYER = 'MiniCPMDecoderLayer';
/** Stored dtypes the native reader widens to float32. */
export const NATIVE_READ_DTYPES = new Set(['F32', 'BF16', 'F16']);

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
  return runNativeMulti(name, inputs, attrs) as tf.Tensor;
}

/** runNative for a kernel with several outputs (an array of tensors). */
export function runNativeMulti(name: string, inputs: tf.NamedTensorMap, attrs: Record<string, unknown> = {}): tf.Tensor | tf.Tensor[] {
  try {
    return tf.engine().runKernel(name, inputs, attrs as unknown as tf.NamedAttrMap) as tf.Tensor | tf.Tensor[];
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
 * From this many rows on (the image encoder's 1024 patches), TensorFlow's MatMul on the widened weight is
 * at least as fast as MiniCPMLinear's GEMM (bench/backend.ts); below it (decode steps, beams, prefill)
 * MiniCPMLinear is faster, most of all for few rows.
 */
export const LINEAR_MATMUL_ROWS = 256;

/**
 * x [M, in] · Wᵀ, W [out, in] as nn.Linear stores it, float32 or packed 16-bit (widened in registers, fp32
 * arithmetic), for M < LINEAR_MATMUL_ROWS. Up to 8 rows (decode steps, beams) stream W once at the memory
 * bandwidth; more run as a blocked GEMM. A bf16 weight gives bit for bit what its float32 widening gives
 * (same kernel, same summation order). Undefined where the kernel is missing or M is larger.
 */
export function linearNative(x: tf.Tensor2D, weight: Weight): tf.Tensor2D | undefined {
  return linearManyNative(x, [weight])?.[0];
}

/**
 * linearNative for 1-8 weights that multiply the same x (q, k, v; gate, up), in one call: the weights stream
 * in one parallel loop. They must all be float32, or all packed in the same dtype.
 */
export function linearManyNative(x: tf.Tensor2D, weights: Weight[]): tf.Tensor2D[] | undefined {
  if (x.shape[0] >= LINEAR_MATMUL_ROWS || weights.length < 1 || weights.length > 8 || !hasKernel(LINEAR)) return undefined;
  const dtype = sharedDtype(weights);
  if (!dtype) return undefined;
  const packed = dtype !== 'f32';
  const inputs: tf.NamedTensorMap = { x };
  weights.forEach((w, i) => { inputs[`w${i}`] = w instanceof PackedWeight ? w.packed : w; });
  const out = runNativeMulti(LINEAR, inputs, { N: weights.length, T: packed ? 'int32' : 'float32', wtype: dtype });
  return (Array.isArray(out) ? out : [out]) as tf.Tensor2D[];
}

/** The dtype all these weights are held in ('f32' for float32 ones), or undefined when they differ. */
function sharedDtype(weights: Weight[]): PackedDtype | 'f32' | undefined {
  const of = (w: Weight) => (w instanceof PackedWeight ? w.dtype : 'f32');
  return weights.every((w) => of(w) === of(weights[0])) ? of(weights[0]) : undefined;
}

/** Packed 16-bit values (int32 [..., K/2]) widened to float32 [..., K], or undefined where not available. */
export function widenNative(packed: tf.Tensor, dtype: PackedDtype): tf.Tensor | undefined {
  if (!hasKernel(WIDEN)) return undefined;
  return runNative(WIDEN, { x: packed }, { wtype: dtype });
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
 * A tensor read by the native kernel straight from an open file (F32, BF16 or F16 at a byte offset), or
 * undefined where the kernel is not available: float32 of `shape`, or with `packed` (BF16/F16 only, even
 * last dimension) the stored 16-bit values as int32 [..., last/2] (PackedWeight's layout). The kernel reads
 * through `at.fd` and refuses a file that is no longer the validated one (NativeOpError, one line).
 * A tensor the kernel leaves in the file's mapping (stored as taken, 64-byte aligned, 1 MiB or more) is with
 * `lazy` not mapped in at load (a table only gathered from): its pages become resident as they are read.
 */
export function readTensorNative(at: FileTensor, shape: number[], opts: { packed?: boolean; lazy?: boolean } = {}): tf.Tensor | undefined {
  if (!NATIVE_READ_DTYPES.has(at.dtype) || !hasKernel(READ_TENSOR)) return undefined;
  const packed = opts.packed ?? false;
  if (packed && (at.dtype === 'F32' || shape.length === 0 || shape[shape.length - 1] % 2 !== 0)) {
    throw new NativeOpError(`${READ_TENSOR}: only BF16/F16 tensors with an even last dimension can stay packed (${at.dtype} [${shape}])`);
  }
  for (const k of ['fd', 'size', 'offset', 'count'] as const) {
    if (!Number.isSafeInteger(at[k])) throw new NativeOpError(`${READ_TENSOR}: ${k} must be an integer, got ${at[k]}`);
  }
  const n = shape.reduce((a, b) => a * b, 1);
  if (n !== at.count) throw new NativeOpError(`${READ_TENSOR}: shape [${shape}] holds ${n} elements, not ${at.count}`);
  const attrs = { fd: at.fd, file_id: at.fileId, size: at.size, offset: at.offset, count: at.count, dtype: at.dtype,
    T: packed ? 'int32' : 'float32', lazy: opts.lazy ? 1 : 0 };
  const out = packed ? [...shape.slice(0, -1), shape[shape.length - 1] / 2] : shape;
  return tf.tidy(() => runNative(READ_TENSOR, {}, attrs).reshape(out));
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

/**
 * x·cos + rotate_half(x)·sin for each d-wide head, in one native pass, or undefined where not available:
 * x [B, H, T, d], or the decoder's 2-D [B*T, H*d] (row r at position r % T); cos, sin [T, d].
 */
export function rotaryNative<T extends tf.Tensor>(x: T, cos: tf.Tensor2D, sin: tf.Tensor2D): T | undefined {
  if (!hasKernel(ROTARY)) return undefined;
  return runNative(ROTARY, { x, cos, sin }) as T;
}

/**
 * Causal attention of B sequences' T new positions over a preallocated KV cache, appending their keys and
 * values to it in place: q [B*T, H*d], k and v [B*T, Hkv*d] (q and k rotated), kcache and vcache
 * [S, Hkv, C, d] float32, idx int32 [B, P] (P = past + T; idx[b][p] the slot holding sequence b's key and
 * value at position p) -> [B*T, H*d]. Undefined where not available.
 */
export function cachedAttentionNative(q: tf.Tensor2D, k: tf.Tensor2D, v: tf.Tensor2D, kcache: tf.Tensor4D,
  vcache: tf.Tensor4D, idx: tf.Tensor2D, heads: number, scale: number): tf.Tensor2D | undefined {
  if (!hasKernel(CACHED_ATTENTION)) return undefined;
  return runNative(CACHED_ATTENTION, { q, k, v, kcache, vcache, idx }, { heads, scale }) as tf.Tensor2D;
}

/**
 * A KV cache's storage [slots, Hkv, capacity, d] float32, new (`old` undefined) or grown from `old` [S0, Hkv,
 * C0, d], holding only `ranges[s] = [lo, hi)`: the positions slot s has written, copied from `old`. The
 * rest is never touched (fresh mapped pages, read as 0, no RSS until written). Undefined where not
 * available (the TF.js path pads with zeros instead).
 */
export function kvGrowNative(old: tf.Tensor4D | undefined, ranges: [number, number][], slots: number, capacity: number,
  kvHeads: number, headDim: number): tf.Tensor4D | undefined {
  if (!hasKernel(KV_GROW)) return undefined;
  return tf.tidy(() => {
    const from = old ?? tf.zeros([0, kvHeads, 0, headDim]);
    const lo = tf.tensor1d(ranges.slice(0, from.shape[0]).map((r) => r[0]), 'int32');
    const hi = tf.tensor1d(ranges.slice(0, from.shape[0]).map((r) => r[1]), 'int32');
    return runNative(KV_GROW, { old: from, lo, hi }, { slots, capacity }) as tf.Tensor4D;
  });
}

/** silu(g) * u (the MiniCPM MLP's middle) in one native pass, or undefined where not available. */
export function swigluNative(g: tf.Tensor, u: tf.Tensor): tf.Tensor | undefined {
  if (!hasKernel(SWIGLU)) return undefined;
  return runNative(SWIGLU, { g, u });
}

/** The inputs of one MiniCPM decoder layer for decoderLayerNative. */
export interface DecoderLayerInputs {
  h: tf.Tensor2D;
  ln1: tf.Tensor1D;
  ln2: tf.Tensor1D;
  wq: Weight; wk: Weight; wv: Weight; wo: Weight; wg: Weight; wu: Weight; wd: Weight;
  /** [T, d] for the T new positions of each sequence. */
  cos: tf.Tensor2D;
  sin: tf.Tensor2D;
  kcache: tf.Tensor4D;
  vcache: tf.Tensor4D;
  idx: tf.Tensor2D;
}

/**
 * One whole MiniCPM decoder layer over h [B*T, D] (norm, q/k/v, rotary, cached attention appending to the
 * caches in place, o, scaled residual, norm, SwiGLU MLP, scaled residual) in one native call: the same
 * kernels as the layer-by-layer native path in the same order, so the same bits, without ~15 dispatches.
 * Undefined where the kernel is missing, for B*T >= LINEAR_MATMUL_ROWS, or when the weights do not share
 * one dtype.
 */
export function decoderLayerNative(x: DecoderLayerInputs, attrs: { eps: number; heads: number; scale: number; residual: number }):
  tf.Tensor2D | undefined {
  if (x.h.shape[0] >= LINEAR_MATMUL_ROWS || !hasKernel(DECODER_LAYER)) return undefined;
  const dtype = sharedDtype([x.wq, x.wk, x.wv, x.wo, x.wg, x.wu, x.wd]);
  if (!dtype) return undefined;
  const t = (w: Weight) => (w instanceof PackedWeight ? w.packed : w);
  return runNative(DECODER_LAYER, {
    h: x.h, ln1: x.ln1, wq: t(x.wq), wk: t(x.wk), wv: t(x.wv), wo: t(x.wo), ln2: x.ln2, wg: t(x.wg), wu: t(x.wu), wd: t(x.wd),
    cos: x.cos, sin: x.sin, kcache: x.kcache, vcache: x.vcache, idx: x.idx,
  }, { T: dtype === 'f32' ? 'float32' : 'int32', wtype: dtype, ...attrs }) as tf.Tensor2D;
}
