// The parameter tree is the checkpoint: `vpm.blocks.3.attn.qkv.weight` in the
// safetensors file is `params.get('vpm.blocks.3.attn.qkv.weight')` here.
// A scoped view (`scope('vpm').scope('blocks').scope(3)`) builds those names,
// as candle's VarBuilder does, so a wrong key fails naming the full key.
import * as tf from '../tfjs.ts';

export class ParamError extends Error {
  override name = 'ParamError';
}

export class ParamStore {
  constructor(private readonly tensors: Map<string, tf.Tensor>) {}

  has(key: string): boolean {
    return this.tensors.has(key);
  }

  /** The tensor of a checkpoint key (keys and shapes were checked at load by weights/loader.ts). */
  get<T extends tf.Tensor = tf.Tensor>(key: string): T {
    const t = this.tensors.get(key);
    if (!t) throw new ParamError(`missing parameter "${key}"`);
    return t as T;
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

  /** Bytes held, by element count x 4 (float32) or the dtype size. */
  bytes(): number {
    let n = 0;
    for (const t of this.tensors.values()) n += t.size * (t.dtype === 'int32' || t.dtype === 'float32' ? 4 : 1);
    return n;
  }

  dispose(): void {
    for (const t of this.tensors.values()) t.dispose();
    this.tensors.clear();
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
}
