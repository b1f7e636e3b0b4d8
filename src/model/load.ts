// Loading a model directory into TF.js tensors (model_dir.ts finds and checks the directory), and
// encoding an image file with a loaded model.
import { fileBackedBytes } from '../backend/native_ops.ts';
import { loadImage } from '../image/decode.ts';
import { preprocess } from '../image/preprocess.ts';
import type { RgbImage } from '../image/types.ts';
import * as tf from '../tfjs.ts';
import { openCheckpoint } from '../weights/checkpoint.ts';
import { MiniCPMV, type LoadOptions } from './minicpmv.ts';
import { loadModelConfig } from './model_dir.ts';

export { BUNDLED_MODEL_DIR, checkModelDir, isBundledModel, loadModelConfig, loadTokenizer, ModelDirError } from './model_dir.ts';

/** Loads a checkpoint directory (HF sharded, HF single file or converted) with its config.json. */
export function loadModel(dir: string, opts: LoadOptions = {}): MiniCPMV {
  const cfg = loadModelConfig(dir);
  const ckpt = openCheckpoint(dir);
  try {
    const before = fileBackedBytes();
    const model = MiniCPMV.fromSource(cfg, ckpt, opts);
    model.noteFileBackedBytes(fileBackedBytes() - before);
    return model;
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
