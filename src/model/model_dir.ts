// A model directory on disk: an HF checkpoint (sharded or single file) or the converted layout, with its
// config.json and tokenizer.model. Nothing here loads TensorFlow: `minicpmv tokenize` and `info` start fast.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { MiniCPMVConfig } from '../config.ts';
import { loadConfig } from '../config_file.ts';
import { UserError } from '../errors.ts';
import { loadTokenizerFile } from '../tokenizer/file.ts';
import type { MiniCPMTokenizer } from '../tokenizer/tokenizer.ts';

export class ModelDirError extends UserError {}

/** The tiny random-weight model that ships with the package (weights/tiny): a demo, its answers are noise. */
export const BUNDLED_MODEL_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'weights', 'tiny');

export function isBundledModel(dir: string): boolean {
  return path.resolve(dir) === BUNDLED_MODEL_DIR;
}

/** Throws ModelDirError unless `dir` is a directory holding a config.json. */
export function checkModelDir(dir: string): void {
  if (!fs.existsSync(dir)) throw new ModelDirError(`model directory ${dir} does not exist`);
  if (!fs.statSync(dir).isDirectory()) throw new ModelDirError(`--model ${dir} is not a directory`);
  if (!fs.existsSync(path.join(dir, 'config.json'))) throw new ModelDirError(`${dir} has no config.json (is it a MiniCPM-V checkpoint directory?)`);
}

/** The parsed config.json of a model directory. */
export function loadModelConfig(dir: string): MiniCPMVConfig {
  checkModelDir(dir);
  return loadConfig(path.join(dir, 'config.json'));
}

/** The tokenizer of a model directory (its tokenizer.model). */
export function loadTokenizer(dir: string): MiniCPMTokenizer {
  checkModelDir(dir);
  const file = path.join(dir, 'tokenizer.model');
  if (!fs.existsSync(file)) throw new ModelDirError(`${dir} has no tokenizer.model`);
  return loadTokenizerFile(file);
}
