// Pieces shared by the commands: the --model and --backend flags, loading
// with progress, reading --msgs files. TensorFlow is imported only when a
// command starts a backend, so commands that need none start fast.
import type { FlagSpecs } from './args.ts';
import { MiB, readRegularText } from '../files.ts';
import { InputError, type CommandIO } from './command.ts';
import { progress } from './progress.ts';
import type { BackendReport } from '../backend/index.ts';
import { BUNDLED_MODEL_DIR, isBundledModel } from '../model/model_dir.ts';
import type { LoadOptions, MiniCPMV } from '../model/minicpmv.ts';
import { WEIGHTS_DTYPE_OPTIONS } from '../weights/loader.ts';
import type { ChatMessage } from '../model/chat.ts';

export const MODEL_FLAG: FlagSpecs = {
  model: { type: 'string', short: 'm', metavar: 'DIR', help: 'checkpoint directory: HF layout or converted (default: the bundled tiny model)' },
};
export const BACKEND_FLAG: FlagSpecs = {
  backend: { type: 'string', metavar: 'NAME', help: 'tensorflow | cpu | auto (default: MINICPMV_BACKEND, else the fastest that loads)' },
};
export const WEIGHTS_DTYPE_FLAG: FlagSpecs = {
  'weights-dtype': {
    type: 'string', choices: WEIGHTS_DTYPE_OPTIONS, default: 'auto',
    help: 'auto: bf16/f16 weights stay 2 bytes where the native ops run (widened inside the products); f32: all widened at load',
  },
};

export function modelDir(flag: string | undefined): string {
  return flag ?? BUNDLED_MODEL_DIR;
}

export const BUNDLED_NOTE =
  'note: using the bundled tiny model with RANDOM weights: its answers are noise, not language. ' +
  'For real answers, download the openbmb/MiniCPM-V repository and pass --model <dir> ' +
  '(or run `minicpmv convert <dir> <out>` first).';

export async function startBackend(io: CommandIO, name: string | undefined, quiet = false): Promise<BackendReport> {
  const { describeBackend, initBackend } = await import('../backend/index.ts');
  const r = await initBackend(name);
  if (!quiet) io.err(describeBackend(r));
  return r;
}

/** The backend as --json outputs report it: which one runs, from which package, and the native ops in use. */
export function backendJson(r: BackendReport): { name: string; provider: string | null; nativeOps: string[]; fallbackReason: string | null } {
  const native = r.attempts.find((a) => a.name === 'tensorflow');
  return {
    name: r.name,
    provider: r.name === 'tensorflow' ? native?.provider ?? null : null,
    nativeOps: r.name === 'tensorflow' ? native?.nativeOps?.kernels ?? [] : [],
    fallbackReason: r.name === 'tensorflow' ? null : native?.reason ?? (r.requested === 'cpu' ? 'cpu was requested' : null),
  };
}

export async function loadWithProgress(io: CommandIO, dir: string, opts: LoadOptions = {}): Promise<{ model: MiniCPMV; ms: number }> {
  const { loadModel } = await import('../model/load.ts');
  const t0 = performance.now();
  if (isBundledModel(dir)) io.err(BUNDLED_NOTE);
  const bar = progress(io, 'loading weights');
  const model = loadModel(dir, { ...opts, onProgress: (d, t, k) => bar.update(d, t, k) });
  const ms = performance.now() - t0;
  const w = model.residentWeights(), b = w.residentBytes;
  const size = (n: number) => (n >= 2 ** 30 ? `${(n / 2 ** 30).toFixed(2)} GiB` : `${(n / 2 ** 20).toFixed(1)} MiB`);
  const what = w.dtype === 'f32' ? 'float32 weights' : `weights (matrices kept in ${w.dtype})`;
  const mapped = w.fileBackedBytes > 0 ? `, ${size(w.fileBackedBytes)} of them used in place in the checkpoint's pages` : '';
  bar.finish(`${size(b)} of ${what}${mapped}`);
  return { model, ms };
}

/** A conversation or a config is small; a file past this is not one (and would be read whole). */
export const MAX_TEXT_FILE_BYTES = 64 * MiB;

/** A regular file's text; `what` names the flag ("--msgs file"). Special files and huge files are refused. */
export function readFileText(path: string, what: string, maxBytes = MAX_TEXT_FILE_BYTES): string {
  return readRegularText(path, `${what} ${path}`, maxBytes, (m) => new InputError(m));
}

/** A JSON list of {role, content}; the image goes to the first (user) message. */
export function readMsgs(path: string): ChatMessage[] {
  const text = readFileText(path, '--msgs file');
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new InputError(`--msgs file ${path} is not valid JSON (${(e as Error).message})`);
  }
  if (!Array.isArray(v)) throw new InputError(`--msgs file ${path} must hold a JSON list of {role, content}`);
  return v as ChatMessage[];
}

export function peakRssMiB(): number {
  return process.resourceUsage().maxRSS / 1024;
}
