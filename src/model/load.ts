// Loading a model directory: an HF checkpoint (sharded or single file) or the
// converted layout, with its config.json and (optionally) tokenizer.model.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { MiniCPMVConfig } from '../config.ts';
import { loadConfig } from '../config_file.ts';
import type { MiniCPMTokenizer } from '../tokenizer/tokenizer.ts';
import { loadTokenizerFile } from '../tokenizer/file.ts';
import { openCheckpoint } from '../weights/checkpoint.ts';
import { loadImage } from '../image/decode.ts';
import { preprocess } from '../image/preprocess.ts';
import type { RgbImage } from '../image/types.ts';
import * as tf from '../tfjs.ts';
import { MiniCPMV, type LoadOptions } from './minicpmv.ts';
import { UserError } from '../errors.ts';

export class ModelDirError extends UserError {}

/** The tiny random-weight model that ships in the repository (weights/tiny). */
export const BUNDLED_MODEL_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'weights', 'tiny');

export function isBundledModel(dir: string): boolean {
  return path.resolve(dir) === BUNDLED_MODEL_DIR;
}

export function checkModelDir(dir: string): void {
  if (!fs.existsSync(dir)) throw new ModelDirError(`model directory ${dir} does not exist`);
  if (!fs.statSync(dir).isDirectory()) throw new ModelDirError(`--model ${dir} is not a directory`);
  if (!fs.existsSync(path.join(dir, 'config.json'))) throw new ModelDirError(`${dir} has no config.json (is it a MiniCPM-V checkpoint directory?)`);
}

export function loadModelConfig(dir: string): MiniCPMVConfig {
  checkModelDir(dir);
  return loadConfig(path.join(dir, 'config.json'));
}

/** Loads a checkpoint directory (HF sharded, HF single file or converted) with its config.json. */
export function loadModel(dir: string, opts: LoadOptions = {}): MiniCPMV {
  const cfg = loadModelConfig(dir);
  const ckpt = openCheckpoint(dir);
  try {
    return MiniCPMV.fromSource(cfg, ckpt, opts);
  } finally {
    ckpt.close();
  }
}

/**
 * From an image (decoded, or a file) to the vision tokens the language model reads: Pillow-exact
 * preprocessing, `vpm`, `resampler`. Returns [numQueries, hidden]; the caller disposes it.
 */
export function encodeImageFile(model: MiniCPMV, image: RgbImage | string): tf.Tensor2D {
  const img = typeof image === 'string' ? loadImage(image) : image;
  const pixels = preprocess(img, model.cfg.vision.imageSize);
  return tf.tidy(() => model.encodeImage(pixels).squeeze([0]) as tf.Tensor2D);
}

export function loadTokenizer(dir: string): MiniCPMTokenizer {
  checkModelDir(dir);
  const file = path.join(dir, 'tokenizer.model');
  if (!fs.existsSync(file)) throw new ModelDirError(`${dir} has no tokenizer.model`);
  return loadTokenizerFile(file);
}
