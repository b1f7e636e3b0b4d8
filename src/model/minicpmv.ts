// The assembled model: `vpm` (SigLIP ViT) -> `resampler` -> image rows merged
// into the token embeddings -> `llm` (MiniCPM decoder). modeling_minicpmv.py
// `MiniCPMV.get_vision_embedding` / `get_vllm_embedding`.
import * as tf from '../tfjs.ts';
import { expectedTensors, type MiniCPMVConfig } from '../config.ts';
import { LINEAR, NativeOpError, READ_TENSOR, WIDEN, hasKernel, readTensorNative } from '../ops/native_kernels.ts';
import { PackedWeight, type PackedDtype } from '../ops/packed_weight.ts';
import { ShapeError } from '../errors.ts';
import { baseName, findNonFinite, nonFiniteMessage, validateCheckpoint, WeightsError, type ModelParts, type TensorSource, WEIGHTS_DTYPE_OPTIONS, type WeightsDtypeOption } from '../weights/loader.ts';
import { Hooks } from './hooks.ts';
import { MiniCPMLlm, type LogitsMode } from './minicpm_llm.ts';
import { ParamStore, isGatherTable, isWeightMatrix, type Param } from './params.ts';
import { Resampler } from './resampler.ts';
import { SiglipVit } from './siglip_vit.ts';

export type { ModelParts, TensorSource };

export interface LoadOptions {
  /** 'vision' loads `vpm.*` and `resampler.*` only. */
  parts?: ModelParts;
  onProgress?: (done: number, total: number, key: string) => void;
  /**
   * 'auto' (default): weight matrices stay in their checkpoint dtype where the project's kernels are loaded
   * (bf16/f16: 2 bytes each, widened inside the products; float32 checkpoints stay float32). 'f32': every
   * tensor widened to float32 at load (the path without the kernels: the cpu backend, MINICPMV_NATIVE_OPS=0).
   */
  weightsDtype?: WeightsDtypeOption;
}

export { WEIGHTS_DTYPE_OPTIONS, type WeightsDtypeOption };

/**
 * What the loaded weights hold: the dtype weight matrices are resident in, their bytes, and how many of those
 * bytes are the checkpoint file's own pages (mapped from the page cache, shared with any other process that
 * loads the file: native/minicpmv_ops.cc FileMap) rather than memory of the process's own.
 */
export interface ResidentWeights {
  dtype: 'bf16' | 'f16' | 'f32';
  residentBytes: number;
  fileBackedBytes: number;
}

/** An image's span of `<unk>` rows in the prompt: [start, end). */
export interface ImageBound {
  start: number;
  end: number;
}

export interface RunInput {
  /** Preprocessed image, CHW [3, S, S]. */
  pixelValues?: Float32Array;
  inputIds: number[];
  imageBounds?: ImageBound[];
  hooks?: Hooks;
  logits?: LogitsMode;
}

/**
 * tfjs-node keeps a new tensor's values in a JS array and hands them to
 * TensorFlow at the tensor's first use: TF_NewTensor shares the array's memory
 * when it is 64-byte aligned, and copies it otherwise (then the JS array is
 * garbage, freed whenever V8 collects). For weights, doing that at the first
 * forward pass means two full copies at once (seen: 24 GB peak for the 13.7 GB
 * model). Hand each over now, tensor by tensor, so at most one tensor is held
 * twice. Each weight must keep its own array: TensorFlow may be reading it.
 * (Uses the backend's input-preparation method; a no-op elsewhere.)
 */
function uploadNow(t: tf.Tensor): void {
  const backend = tf.backend() as unknown as { getInputTensorIds?: (ts: tf.Tensor[]) => unknown };
  if (tf.getBackend() === 'tensorflow' && typeof backend.getInputTensorIds === 'function') backend.getInputTensorIds([t]);
}

/**
 * Which weight matrices a load keeps packed in their 16-bit checkpoint dtype, and the bytes the weights will
 * hold: a BF16/F16 weight matrix (params.ts isWeightMatrix) with an even input size stays 2 bytes per value
 * with weightsDtype 'auto' where the kernels that read, multiply and widen it are loaded (and the source
 * can hand out file locations); everything else is float32.
 */
export function residencyPlan(source: TensorSource, tensors: { key: string; shape: number[] }[], weightsDtype: WeightsDtypeOption = 'auto'):
  { packed: Map<string, PackedDtype>; weights: Omit<ResidentWeights, 'fileBackedBytes'> } {
  const kernels = weightsDtype === 'auto' && source.location !== undefined && [READ_TENSOR, LINEAR, WIDEN].every(hasKernel);
  const packed = new Map<string, PackedDtype>();
  let bytes = 0;
  for (const t of tensors) {
    const n = t.shape.reduce((a, b) => a * b, 1);
    const dtype = source.info(t.key).dtype;
    if (kernels && (dtype === 'BF16' || dtype === 'F16') && isWeightMatrix(t.key, t.shape) && t.shape[1] % 2 === 0) {
      packed.set(t.key, dtype === 'BF16' ? 'bf16' : 'f16');
      bytes += 2 * n;
    } else {
      bytes += 4 * n;
    }
  }
  const first = packed.values().next();
  return { packed, weights: { dtype: first.done ? 'f32' : first.value, residentBytes: bytes } };
}

export class MiniCPMV {
  readonly vpm: SiglipVit;
  readonly resampler: Resampler;
  private readonly _llm?: MiniCPMLlm;

  private constructor(readonly cfg: MiniCPMVConfig, readonly params: ParamStore, parts: ModelParts) {
    this.vpm = new SiglipVit(params, cfg.vision);
    this.resampler = new Resampler(params, cfg.resampler);
    if (parts === 'all') this._llm = new MiniCPMLlm(params, cfg.llm);
  }

  get llm(): MiniCPMLlm {
    if (!this._llm) throw new WeightsError('this model was loaded with the vision tower only (parts: "vision")');
    return this._llm;
  }

  get hasLlm(): boolean {
    return this._llm !== undefined;
  }

  /**
   * Checks the source against the config (weights/loader.ts `validateCheckpoint`, the one check), then
   * uploads the expected tensors one at a time (each Float32Array is dropped once TF.js holds its copy).
   */
  static fromSource(cfg: MiniCPMVConfig, source: TensorSource, opts: LoadOptions = {}): MiniCPMV {
    const parts = opts.parts ?? 'all';
    const weightsDtype = opts.weightsDtype ?? 'auto';
    if (!(WEIGHTS_DTYPE_OPTIONS as readonly string[]).includes(weightsDtype)) {
      throw new WeightsError(`weights dtype must be one of ${WEIGHTS_DTYPE_OPTIONS.join(', ')}, got ${JSON.stringify(weightsDtype)}`);
    }
    validateCheckpoint(source, cfg, { parts });
    const wanted = expectedTensors(cfg).filter((t) => parts === 'all' || t.role !== 'llm');
    const plan = residencyPlan(source, wanted, weightsDtype);
    const tensors = new Map<string, Param>();
    try {
      wanted.forEach((t, i) => {
        const at = source.location?.(t.key);
        const pack = plan.packed.get(t.key);
        let w: tf.Tensor | undefined;
        // Every value is checked to be finite as it is read (the native reader checks each piece while it is
        // in cache; the JavaScript path scans the array it uploads): one NaN would otherwise give NaN logits
        // and an empty answer with exit 0.
        const nonFinite = (detail: string) => new WeightsError(
          `${source.dir ?? 'checkpoint'}: weights must be finite: ${detail}`, [detail]);
        const file = () => (source.fileOf ? baseName(source.fileOf(t.key)) : t.key);
        try {
          w = at ? readTensorNative(at, t.shape, { packed: pack !== undefined, lazy: isGatherTable(t.key) }) : undefined;
        } catch (e) {
          if (!(e instanceof NativeOpError)) throw e;
          if (/: \d+ non-finite value/.test(e.message)) throw nonFinite(`${t.key}: ${e.message.slice(e.message.indexOf(': ') + 2)} (in ${file()})`);
          throw new WeightsError(`${at!.file}: tensor "${t.key}": ${e.message}`);
        }
        if (!w) {
          const data = source.readFloat32(t.key);
          const bad = findNonFinite(data);
          if (bad) throw nonFinite(nonFiniteMessage(t.key, file(), bad));
          w = tf.tensor(data, t.shape, 'float32');
          uploadNow(w);
        }
        tensors.set(t.key, pack ? new PackedWeight(w as tf.Tensor2D, pack) : w);
        opts.onProgress?.(i + 1, wanted.length, t.key);
      });
      return new MiniCPMV(cfg, new ParamStore(tensors), parts);
    } catch (e) {
      for (const t of tensors.values()) t.dispose();
      throw e;
    }
  }

  /** Vision features for one preprocessed image (CHW [3, S, S]): [1, numQueries, hidden]. */
  encodeImage(pixelValues: Float32Array | tf.Tensor, hooks: Hooks = Hooks.none()): tf.Tensor3D {
    const S = this.cfg.vision.imageSize;
    if (!(pixelValues instanceof tf.Tensor) && pixelValues.length !== 3 * S * S) {
      throw new ShapeError(`encodeImage: expected ${3 * S * S} pixel values (CHW [3, ${S}, ${S}]), got ${pixelValues.length}`);
    }
    return tf.tidy(() => {
      const px = (pixelValues instanceof tf.Tensor ? pixelValues : tf.tensor(pixelValues)).reshape([1, 3, S, S]) as tf.Tensor4D;
      return this.resampler.forward(this.vpm.forward(px, hooks), hooks);
    });
  }

  /**
   * `get_vllm_embedding`: embed_tokens(ids) * scale_emb, then the image rows
   * written over the `<unk>` rows [start, end) WITHOUT the scale. [1, L, D]
   */
  buildInputsEmbeds(ids: number[], bounds: ImageBound[], images: tf.Tensor3D[]): tf.Tensor3D {
    if (bounds.length !== images.length) throw new ShapeError(`${bounds.length} image spans but ${images.length} images`);
    return tf.tidy(() => {
      const E = this.llm.embed(ids);
      if (!bounds.length) return E;
      const D = this.cfg.llm.hidden;
      const pieces: tf.Tensor[] = [];
      let at = 0;
      bounds.forEach((b, i) => {
        const rows = images[i].reshape([1, -1, D]);
        if (rows.shape[1] !== b.end - b.start) {
          throw new ShapeError(`image span [${b.start}, ${b.end}) holds ${b.end - b.start} rows but the image gives ${rows.shape[1]}`);
        }
        if (b.start > at) pieces.push(E.slice([0, at, 0], [1, b.start - at, D]));
        pieces.push(rows);
        at = b.end;
      });
      if (at < ids.length) pieces.push(E.slice([0, at, 0], [1, ids.length - at, D]));
      return tf.concat(pieces, 1) as tf.Tensor3D;
    });
  }

  /**
   * One forward pass over a prompt, with hook points: the typed entry point
   * behind `trace`. Returns the logits ('all': [1, L, V]) or the final
   * hidden states ('none'). The caller disposes the result.
   */
  run(input: RunInput): tf.Tensor3D {
    const hooks = input.hooks ?? Hooks.none();
    return tf.tidy(() => this.llm.forward(this.promptEmbeds(input, hooks), { hooks, logits: input.logits ?? 'all' }));
  }

  /**
   * The prompt's `inputs_embeds` [1, L, D], hooks included: the image encoded
   * (vpm, resampler), `input_ids` emitted, the image rows merged into every
   * image span (one image per conversation, as chat() passes it).
   */
  promptEmbeds(input: Omit<RunInput, 'hooks' | 'logits'>, hooks: Hooks = Hooks.none()): tf.Tensor3D {
    const bounds = input.imageBounds ?? [];
    if (bounds.length && !input.pixelValues) throw new ShapeError('image spans given but no pixel values');
    return tf.tidy(() => {
      const vision = input.pixelValues && bounds.length ? this.encodeImage(input.pixelValues, hooks) : undefined;
      const ids = hooks.emit('input_ids', tf.tensor2d(input.inputIds, [1, input.inputIds.length], 'int32'));
      return this.buildInputsEmbeds(Array.from(ids.dataSync()), bounds, bounds.map(() => vision!));
    });
  }

  /** Bytes the weights hold in memory (4 per float32 element, 2 per packed 16-bit element). */
  weightBytes(): number {
    return this.params.bytes();
  }

  /** The dtype weight matrices are resident in, the bytes all weights hold, and those left in the checkpoint's pages. */
  residentWeights(): ResidentWeights {
    return { dtype: this.params.weightsDtype(), residentBytes: this.params.bytes(), fileBackedBytes: this.fileBacked };
  }

  private fileBacked = 0;

  /** Set by the Node loader (load.ts), which can ask the native reader: the bytes of weights left in the file's mapping. */
  noteFileBackedBytes(bytes: number): void {
    this.fileBacked = bytes;
  }

  dispose(): void {
    this.vpm.dispose();
    this.resampler.dispose();
    this.params.dispose();
  }
}
