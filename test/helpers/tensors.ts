// Small safetensors files for tests.
import path from 'node:path';
import { writeSafetensors, type TensorToWrite } from '../../src/weights/safetensors_writer.ts';

export const f32 = (name: string, shape: number[], values: number[]): TensorToWrite =>
  ({ name, dtype: 'F32', shape, data: Float32Array.from(values) });
export const i32 = (name: string, shape: number[], values: number[]): TensorToWrite =>
  ({ name, dtype: 'I32', shape, data: Int32Array.from(values) });

/** A function writing `name` (a safetensors file with these tensors) into `dir`; returns its path. */
export function writerIn(dir: string): (name: string, tensors: TensorToWrite[]) => string {
  return (name, tensors) => {
    const p = path.join(dir, name);
    writeSafetensors(p, tensors);
    return p;
  };
}

/** -1 when x and y hold the same values (bit for bit: Object.is, so -0 and NaN count), else the first index where they differ. */
export function firstDiff(x: ArrayLike<number>, y: ArrayLike<number>): number {
  if (x.length !== y.length) return Math.min(x.length, y.length);
  for (let i = 0; i < x.length; i++) if (!Object.is(x[i], y[i])) return i;
  return -1;
}
