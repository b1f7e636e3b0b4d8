// Loading a model directory: an HF checkpoint (sharded or single file) or the
// converted layout, with its config.json and (optionally) tokenizer.model.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfig, type MiniCPMVConfig } from '../config.ts';
import { MiniCPMTokenizer } from '../tokenizer/tokenizer.ts';
import { openCheckpoint } from '../weights/checkpoint.ts';
import { validateCheckpoint } from '../weights/loader.ts';
import { MiniCPMV, type ModelParts } from './minicpmv.ts';

export class ModelDirError extends Error {
  override name = 'ModelDirError';
}

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

export interface LoadModelOptions {
  parts?: ModelParts;
  onProgress?: (done: number, total: number, key: string) => void;
  /** Reject NaN/Inf in weights (reads every tensor once more). */
  checkFinite?: boolean;
}

export function loadModel(dir: string, opts: LoadModelOptions = {}): MiniCPMV {
  const cfg = loadModelConfig(dir);
  const ckpt = openCheckpoint(dir);
  try {
    validateCheckpoint(ckpt, cfg, { checkFinite: opts.checkFinite });
    return MiniCPMV.fromSource(cfg, ckpt, { parts: opts.parts, onProgress: opts.onProgress });
  } finally {
    ckpt.close();
  }
}

export function loadTokenizer(dir: string): MiniCPMTokenizer {
  checkModelDir(dir);
  const file = path.join(dir, 'tokenizer.model');
  if (!fs.existsSync(file)) throw new ModelDirError(`${dir} has no tokenizer.model`);
  return MiniCPMTokenizer.fromFile(file);
}
