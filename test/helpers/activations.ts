// Every selected activation of one forward pass, copied out (key -> shape and data): fine for the tiny model.
import * as tf from '../../src/tfjs.ts';
import { Hooks } from '../../src/model/hooks.ts';
import type { MiniCPMV, RunInput } from '../../src/model/minicpmv.ts';

export type Activations = Map<string, { shape: number[]; data: Float32Array | Int32Array }>;

export function recordActivations(model: MiniCPMV, input: Omit<RunInput, 'hooks'>, select: (key: string) => boolean = () => true): Activations {
  const out: Activations = new Map();
  const hooks = new Hooks({
    select,
    onActivation: (k, t) => out.set(k, { shape: [...t.shape], data: t.dataSync().slice() as Float32Array | Int32Array }),
  });
  tf.dispose(model.run({ ...input, hooks }));
  return out;
}
