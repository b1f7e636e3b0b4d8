// Pieces shared by the commands: the --model and --backend flags, loading
// with progress, reading --msgs files.
import fs from 'node:fs';
import type { FlagSpecs } from './args.ts';
import { InputError, type CommandIO } from './command.ts';
import { progress } from './progress.ts';
import { describeBackend, initBackend, type BackendReport } from '../backend/index.ts';
import { BUNDLED_MODEL_DIR, isBundledModel, loadModel } from '../model/load.ts';
import { WEIGHTS_DTYPE_OPTIONS, type LoadOptions } from '../model/minicpmv.ts';
import type { MiniCPMV } from '../model/minicpmv.ts';
import type { ChatMessage } from '../model/chat.ts';

export const MODEL_FLAG: FlagSpecs = {
  model: { type: 'string', metavar: 'DIR', help: 'checkpoint directory: HF layout or converted (default: the bundled tiny model)' },
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
  const r = await initBackend(name);
  if (!quiet) io.err(describeBackend(r));
  return r;
}

export function loadWithProgress(io: CommandIO, dir: string, opts: LoadOptions = {}): { model: MiniCPMV; ms: number } {
  const t0 = performance.now();
  if (isBundledModel(dir)) io.err(BUNDLED_NOTE);
  const bar = progress(io, 'loading weights');
  const model = loadModel(dir, { ...opts, onProgress: (d, t, k) => bar.update(d, t, k) });
  const ms = performance.now() - t0;
  const w = model.residentWeights(), b = w.residentBytes;
  const what = w.dtype === 'f32' ? 'float32 weights' : `weights (matrices kept in ${w.dtype})`;
  bar.finish(`${b >= 2 ** 30 ? `${(b / 2 ** 30).toFixed(2)} GiB` : `${(b / 2 ** 20).toFixed(1)} MiB`} of ${what}`);
  return { model, ms };
}

export function readFileText(path: string, what: string): string {
  if (!fs.existsSync(path)) throw new InputError(`${what} ${path} does not exist`);
  if (fs.statSync(path).isDirectory()) throw new InputError(`${what} ${path} is a directory`);
  try {
    return fs.readFileSync(path, 'utf8');
  } catch (e) {
    throw new InputError(`${what} ${path} cannot be read (${(e as NodeJS.ErrnoException).code})`);
  }
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
