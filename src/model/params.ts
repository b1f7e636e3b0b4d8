// The parameter tree is the checkpoint: `vpm.blocks.3.attn.qkv.weight` in the
// safetensors file is `params.get('vpm.blocks.3.attn.qkv.weight')` here.
// A scoped view (`scope('vpm').scope('blocks').scope(3)`) builds those names,
// as candle's VarBuilder does, so a wrong key fails naming the full key.
//
// Weight matrices (the 2-D `*weight` tensors: every nn.Linear weight, the embedding table and the
// resampler's in_proj_weight) may be held in their checkpoint's 16-bit dtype (src/ops/packed_weight.ts);
// `weight(key)` gives them to the layers either way. `get(key)` gives float32 tensors (norms, biases,
// position tables, the conv kernel, resampler.proj/query) and refuses a packed weight by name. `info(key)`
// gives the PyTorch shape and the resident dtype of any parameter; `float32(key)` a float32 copy of its values.
import * as tf from '../tfjs.ts';
import { PackedWeight, widenOps, type Weight } from '../ops/packed_weight.ts';
import { widenNative } from '../ops/native_kernels.ts';

export class ParamError extends Error {
  override name = 'ParamError';
}

/** A parameter as held: a float32 tensor, or a weight matrix kept packed in its 16-bit checkpoint dtype. */
export type Param = tf.Tensor | PackedWeight;

/** The resident dtype of a parameter: 'float32', or the 16-bit dtype a packed weight keeps. */
export type ResidentDtype = 'float32' | 'bf16' | 'f16';

/** Whether a checkpoint tensor is a weight matrix the layers take through `weight()` (and may stay packed). */
export function isWeightMatrix(key: string, shape: readonly number[]): boolean {
  return shape.length === 2 && key.endsWith('weight');
}

/**
 * A table the model only gathers rows from (the token embeddings: a prompt and its answer read a few hundred
 * of its 122,753 rows), which the loader leaves unmapped where it stays in the checkpoint's pages.
 */
export function isGatherTable(key: string): boolean {
  return key === 'llm.model.embed_tokens.weight';
}

export class ParamStore {
  constructor(private readonly tensors: Map<string, Param>) {}

  has(key: string): boolean {
    return this.tensors.has(key);
  }

  /** The float32 tensor of a checkpoint key (keys and shapes were checked at load by weights/loader.ts). */
  get<T extends tf.Tensor = tf.Tensor>(key: string): T {
    const t = this.find(key);
    if (t instanceof PackedWeight) throw new ParamError(`"${key}" is held packed (${t.dtype}); read it with weight(), or float32() for its values`);
    return t as T;
  }

  /**
   * Any parameter's values as a NEW float32 tensor in PyTorch's shape, which the caller disposes: a packed
   * weight widened (exact), a float32 one copied. For looking at weights; the layers use get()/weight().
   */
  float32(key: string): tf.Tensor {
    const t = this.find(key);
    if (!(t instanceof PackedWeight)) return tf.clone(t);
    return widenNative(t.packed, t.dtype) ?? widenOps(t.packed, t.dtype);
  }

  /** A weight matrix [out, in] for linear() or an embedding lookup: float32, or packed 16-bit. */
  weight(key: string): Weight {
    const t = this.find(key);
    if (!(t instanceof PackedWeight) && t.rank !== 2) throw new ParamError(`"${key}" is not a weight matrix (shape [${t.shape}])`);
    return t as Weight;
  }

  /** PyTorch's shape and the resident dtype. */
  info(key: string): { shape: number[]; dtype: ResidentDtype } {
    const t = this.find(key);
    return t instanceof PackedWeight ? { shape: [...t.shape], dtype: t.dtype } : { shape: [...t.shape], dtype: 'float32' };
  }

  /** Registers a tensor derived at load time (e.g. a transposed conv kernel). */
  setDerived(key: string, t: tf.Tensor): void {
    const old = this.tensors.get(key);
    if (old && old !== t) old.dispose();
    this.tensors.set(key, t);
  }

  keys(): string[] {
    return [...this.tensors.keys()];
  }

  scope(prefix: string | number): Scope {
    return new Scope(this, String(prefix));
  }

  /** Bytes held: 4 per float32 element, 2 per packed 16-bit element. */
  bytes(): number {
    let n = 0;
    for (const t of this.tensors.values()) n += t instanceof PackedWeight ? t.bytes : t.size * (t.dtype === 'int32' || t.dtype === 'float32' ? 4 : 1);
    return n;
  }

  /** 'bf16' / 'f16' when weight matrices are held packed in that dtype, else 'f32'. */
  weightsDtype(): 'bf16' | 'f16' | 'f32' {
    for (const t of this.tensors.values()) if (t instanceof PackedWeight) return t.dtype;
    return 'f32';
  }

  dispose(): void {
    for (const t of this.tensors.values()) t.dispose();
    this.tensors.clear();
  }

  private find(key: string): Param {
    const t = this.tensors.get(key);
    if (!t) throw new ParamError(`missing parameter "${key}"`);
    return t;
  }
}

export class Scope {
  constructor(private readonly store: ParamStore, readonly prefix: string) {}
  scope(name: string | number): Scope {
    return new Scope(this.store, `${this.prefix}.${name}`);
  }
  get<T extends tf.Tensor = tf.Tensor>(name: string): T {
    return this.store.get<T>(`${this.prefix}.${name}`);
  }
  weight(name: string): Weight {
    return this.store.weight(`${this.prefix}.${name}`);
  }
}
