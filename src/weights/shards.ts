// Splitting a list of tensors into shard files, and the HF shard file names. Used by `random-weights`
// (HF layout) and `convert` (the llm file of the converted layout).
import { CheckpointError } from './checkpoint.ts';

/** Shard sizes in bytes: positive (1 puts each tensor in its own file), at most 1 TB; HF writes 5e9. */
export const SHARD_BYTES_RANGE = [1, 1e12] as const;

export function checkShardBytes(v: number, name: string): void {
  const [lo, hi] = SHARD_BYTES_RANGE;
  if (!Number.isSafeInteger(v) || v < lo || v > hi) throw new CheckpointError(`${name} must be an integer in ${lo}..${hi} bytes, got ${v}`);
}

/**
 * transformers 4.36 `shard_checkpoint`: walk tensors in order, start a new shard when the next tensor
 * would push the current (non-empty) one past `maxShardBytes` ("5GB" = 5e9 bytes).
 */
export function planShards(tensors: { key: string; bytes: number }[], maxShardBytes: number): string[][] {
  const shards: string[][] = [[]];
  let size = 0;
  for (const t of tensors) {
    if (size + t.bytes > maxShardBytes && shards[shards.length - 1].length > 0) {
      shards.push([]);
      size = 0;
    }
    shards[shards.length - 1].push(t.key);
    size += t.bytes;
  }
  return shards;
}

/** HF shard file name: model-00001-of-00002.safetensors. */
export function shardName(i: number, n: number, stem = 'model'): string {
  return `${stem}-${String(i + 1).padStart(5, '0')}-of-${String(n).padStart(5, '0')}.safetensors`;
}
