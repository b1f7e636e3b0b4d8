// Choosing the TF.js backend: the native `tensorflow` backend (tfjs-node, or
// tfjs-node-gpu where CUDA is present) is the fast path; the pure-JS `cpu`
// backend always loads. The choice comes from the caller (`--backend`), else
// MINICPMV_BACKEND, else the fastest that loads. Every attempt's outcome is
// kept, so the CLI can say which backend runs and why the others do not.
//
// `wasm` is not offered: its wasm32 heap (about 3.9 GiB, with XNNPACK keeping a
// packed copy of every weight) cannot hold the 2.4B-parameter decoder, and on
// CPUs it is slower than the native backend.
import { createRequire } from 'node:module';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '../tfjs.ts';
import '@tensorflow/tfjs-backend-cpu';
import { loadNativeOps, type NativeOps } from './native_ops.ts';
import { UserError } from '../errors.ts';

export const BACKENDS = ['tensorflow', 'cpu'] as const;
export type BackendName = (typeof BACKENDS)[number];

export class BackendError extends UserError {}

export interface BackendAttempt {
  name: BackendName;
  ok: boolean;
  /** Package that provided it (tensorflow only). */
  provider?: string;
  /** Why it could not be used. */
  reason?: string;
  /** The project's own TensorFlow ops, native/minicpmv_ops.cc (tensorflow only). */
  nativeOps?: NativeOps;
}

export interface BackendReport {
  /** The backend now active in tf. */
  name: BackendName;
  /** What was asked for ('auto' when nothing was). */
  requested: BackendName | 'auto';
  attempts: BackendAttempt[];
}

const require = createRequire(import.meta.url);
let nativeAttempt: BackendAttempt | undefined;

function cudaPresent(): boolean {
  return fs.existsSync('/proc/driver/nvidia/version');
}

/**
 * Runs `load` with file descriptor 2 pointed at /dev/null (native/quiet.cc), unless MINICPMV_VERBOSE=1:
 * libtensorflow prints an absl banner and a oneDNN notice there when it loads, whatever
 * TF_CPP_MIN_LOG_LEVEL says. Where the small addon is not built, the banner shows.
 */
function quietly<T>(load: () => T): T {
  const addon = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'native', 'build', 'Release', 'minicpmv_quiet.node');
  if (process.env.MINICPMV_VERBOSE === '1' || !fs.existsSync(addon)) return load();
  const quiet = require(addon) as { mute(): number; unmute(fd: number): void };
  const saved = quiet.mute();
  try {
    return load();
  } finally {
    quiet.unmute(saved);
  }
}

/** Loads tfjs-node (or tfjs-node-gpu) once; it registers the 'tensorflow' backend. */
function loadNative(): BackendAttempt {
  if (nativeAttempt) return nativeAttempt;
  process.env.TF_CPP_MIN_LOG_LEVEL ??= '2';
  const candidates = cudaPresent() ? ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node'] : ['@tensorflow/tfjs-node'];
  const reasons: string[] = [];
  for (const pkg of candidates) {
    try {
      quietly(() => require(pkg));
      if (tf.findBackend('tensorflow') === undefined) throw new Error('loaded but registered no tensorflow backend');
      nativeAttempt = { name: 'tensorflow', ok: true, provider: pkg, nativeOps: loadNativeOps() };
      return nativeAttempt;
    } catch (e) {
      const msg = (e as Error).message.split('\n')[0];
      reasons.push(
        /Cannot find module/.test(msg) && msg.includes(pkg)
          ? `${pkg} is not installed (npm install could not build it; see README "Backends")`
          : /tfjs_binding\.node/.test(msg)
            ? `${pkg} is installed but its native binding was not built (install scripts not run or not allowed?): ` +
              'run `npm rebuild` in the project (README "Install scripts")'
            : `${pkg} failed to load: ${msg}`,
      );
    }
  }
  nativeAttempt = { name: 'tensorflow', ok: false, reason: reasons.join('; ') };
  return nativeAttempt;
}

function parseName(value: string, origin: string): BackendName | 'auto' {
  const v = value.trim().toLowerCase();
  if (v === '' || v === 'auto') return 'auto';
  if (v === 'native' || v === 'node') return 'tensorflow';
  if ((BACKENDS as readonly string[]).includes(v)) return v as BackendName;
  throw new BackendError(`unknown backend "${value}" (from ${origin}); available: ${BACKENDS.join(', ')}, auto`);
}

/**
 * Activates a backend. `requested` (e.g. from --backend) wins over the
 * MINICPMV_BACKEND environment variable; with neither, the fastest that loads.
 * Throws BackendError when an explicitly requested backend cannot load.
 */
export async function initBackend(requested?: string): Promise<BackendReport> {
  const want =
    requested !== undefined
      ? parseName(requested, '--backend')
      : process.env.MINICPMV_BACKEND
        ? parseName(process.env.MINICPMV_BACKEND, 'MINICPMV_BACKEND')
        : 'auto';
  const attempts: BackendAttempt[] = [];
  const order: BackendName[] = want === 'auto' ? ['tensorflow', 'cpu'] : [want];
  for (const name of order) {
    const attempt = name === 'tensorflow' ? loadNative() : { name, ok: true };
    if (attempt.ok) {
      const ok = await tf.setBackend(name);
      if (!ok) {
        attempts.push({ name, ok: false, reason: `tf.setBackend('${name}') failed` });
        continue;
      }
      // The cpu backend prints a banner suggesting tfjs-node on first use; this module already reports it.
      if (name === 'cpu') (tf.backend() as unknown as { firstUse?: boolean }).firstUse = false;
      attempts.push(attempt);
      return { name, requested: want, attempts };
    }
    attempts.push(attempt);
  }
  if (want !== 'auto') {
    const others = BACKENDS.filter((b) => b !== want);
    throw new BackendError(
      `backend "${want}" was requested but cannot load: ${attempts[0].reason}; ` +
        `available: ${others.join(', ')}`,
    );
  }
  throw new BackendError(`no backend could load: ${attempts.map((a) => `${a.name}: ${a.reason}`).join('; ')}`);
}

/** One line for logs: which backend runs and, if the native one is missing, why. */
export function describeBackend(r: BackendReport): string {
  const native = r.attempts.find((a) => a.name === 'tensorflow');
  let s = `backend: ${r.name}`;
  if (r.name === 'tensorflow' && native?.provider) {
    const ops = native.nativeOps;
    s += ` (${native.provider}; native ops: ${ops?.ok ? ops.detail : `none, TF kernels only (${ops?.detail ?? 'not loaded'})`})`;
  }
  if (r.name !== 'tensorflow') {
    const why = native?.reason ?? (r.requested === 'cpu' ? 'cpu was requested' : 'not tried');
    s += ` (native tensorflow backend not used: ${why})`;
  }
  return s;
}

/** True when the native backend can load, without switching to it. */
export function nativeAvailable(): BackendAttempt {
  return loadNative();
}
