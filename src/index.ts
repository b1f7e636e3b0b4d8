/**
 * minicpmv-ts: MiniCPM-V v1 (OmniLMM-3B) in TypeScript on TensorFlow.js, with every activation named by its
 * PyTorch module path and the tools to compare it against the original.
 *
 * ```ts
 * import { initBackend, loadModel, loadTokenizer, loadImage, ChatSession, BUNDLED_MODEL_DIR } from 'minicpmv-ts';
 * await initBackend();                                   // native TensorFlow where it loads, else TF.js's cpu
 * const model = loadModel(BUNDLED_MODEL_DIR);            // or an HF checkpoint directory
 * const session = new ChatSession(model, loadTokenizer(BUNDLED_MODEL_DIR), loadImage('photo.jpg'));
 * console.log(session.ask('What is in the image?', { mode: 'greedy' }).answer);
 * session.dispose(); model.dispose();
 * ```
 *
 * Importing this module loads TF.js's core but not the native backend: `initBackend()` does that.
 * @packageDocumentation
 */

// Backends
export { BACKENDS, BackendError, describeBackend, initBackend, nativeAvailable } from './backend/index.ts';
export type { BackendAttempt, BackendName, BackendReport } from './backend/index.ts';

// Errors: every error a user can fix extends UserError.
export { ShapeError, UserError } from './errors.ts';

// Config
export { ConfigError, expectedTensors, parseConfig } from './config.ts';
export type { ExpectedTensor, LlmConfig, MiniCPMVConfig, ResamplerConfig, VisionConfig } from './config.ts';
export { loadConfig } from './config_file.ts';

// Loading models and tokenizers
export {
  BUNDLED_MODEL_DIR, checkModelDir, isBundledModel, loadModelConfig, loadTokenizer, ModelDirError,
} from './model/model_dir.ts';
export { encodeImageFile, loadModel } from './model/load.ts';
export { MiniCPMV } from './model/minicpmv.ts';
export type { ImageBound, LoadOptions, ModelParts, RunInput, TensorSource } from './model/minicpmv.ts';
export { KVCache, MiniCPMLlm } from './model/minicpm_llm.ts';
export type { LogitsMode } from './model/minicpm_llm.ts';
export { SiglipVit } from './model/siglip_vit.ts';
export { Resampler } from './model/resampler.ts';

// Chat and generation
export {
  buildPrompt, chat, ChatSession, cleanOutput, encodePrompt, MAX_INPUT_LENGTH, ORIGINAL_DEFAULTS, PromptError, TextStreamer,
} from './model/chat.ts';
export type { AskOptions, ChatMessage, ChatReply, ChatTimings, DecodeMode, DecodeOptions, EncodedPrompt, Role } from './model/chat.ts';
export {
  beamSearch, checkDecodeOptions, GenerationError, greedy, MAX_BEAMS, MAX_NEW_TOKENS, sample, sampleFromLogits,
} from './model/generate.ts';
export type { BeamOptions, DecodeRanges, GenerationStats, GreedyOptions, SampleOptions } from './model/generate.ts';

// Hooks: activations by PyTorch module path
export { HookError, hookNames, hookPatterns, Hooks, hookSummary } from './model/hooks.ts';
export type { HookOptions } from './model/hooks.ts';

// Tokenizer
export { MiniCPMTokenizer, WRAPPER_SPECIAL_TOKENS } from './tokenizer/tokenizer.ts';
export type { TokenizerOptions } from './tokenizer/tokenizer.ts';
export { TokenizerError } from './tokenizer/errors.ts';
export { loadTokenizerFile } from './tokenizer/file.ts';
export { parseSentencePieceModel } from './tokenizer/sentencepiece_model.ts';

// Images: Pillow-exact decoding and preprocessing
export { decodeImage, detectFormat, ImageError, loadImage } from './image/decode.ts';
export type { ImageFormat, RgbImage } from './image/decode.ts';
export { IMAGE_SIZE, preprocess } from './image/preprocess.ts';

// Parity: compare activation files, record traces, the tolerance policy
export { compareTensors, CompareError, logitsStats } from './parity/compare.ts';
export type { Diff, KeyResult, LogitsStats, Status } from './parity/compare.ts';
export { compareFiles } from './parity/compare_files.ts';
export type { CompareOptions, CompareResult } from './parity/compare_files.ts';
export { formatNumber, resultToJson } from './parity/format.ts';
export { renderHtml } from './parity/report_html.ts';
export { ActivationRecorder, tensorStats } from './parity/trace.ts';
export type { KeyStats } from './parity/trace.ts';
export { compileGlobs, matchKey, modelOrder } from './parity/globs.ts';
export { DEFAULT_TOLERANCE, POLICY, STAGE_TOLERANCES, toleranceFor } from './parity/tolerances.ts';
export type { ResolvedTolerance, StageTolerance, Tolerance } from './parity/tolerances.ts';

// Weights: safetensors, checkpoints, conversion, random weights
export { SafetensorsError, SafetensorsFile } from './weights/safetensors.ts';
export type { STDtype, TensorInfo } from './weights/safetensors.ts';
export { SafetensorsWriter, writeSafetensors } from './weights/safetensors_writer.ts';
export type { TensorToWrite, WriteDtype } from './weights/safetensors_writer.ts';
export { Checkpoint, CheckpointError, openCheckpoint } from './weights/checkpoint.ts';
export { validateCheckpoint, WeightsError } from './weights/loader.ts';
export { convertCheckpoint, verifyConvertedCheckpoint } from './weights/convert.ts';
export type { ConvertOptions } from './weights/convert.ts';
export { writeRandomCheckpoint } from './weights/random.ts';
