// A small, strict flag parser: every command declares its flags; anything
// else (unknown flags, missing values, malformed numbers) is a UsageError,
// which the CLI prints as one line and exits with code 2.
import { UserError } from '../errors.ts';

export class UsageError extends UserError {}

export type FlagType = 'string' | 'number' | 'int' | 'boolean' | 'list';

export interface FlagSpec {
  type: FlagType;
  /** One-line description for --help. */
  help: string;
  short?: string;
  /** Other long names (e.g. `temp` for `temperature`, as llama.cpp spells it). */
  aliases?: readonly string[];
  default?: string | number | boolean;
  /** Allowed values for string flags. */
  choices?: readonly string[];
  /** Value name shown in --help. */
  metavar?: string;
  /** The flag may be given several times (string values collected into an array). */
  repeat?: boolean;
}

export type FlagSpecs = Record<string, FlagSpec>;
export type FlagValue = string | number | boolean | string[] | undefined;
export interface Parsed {
  flags: Record<string, FlagValue>;
  positionals: string[];
}

function convert(name: string, spec: FlagSpec, raw: string): string | number {
  if (spec.type === 'number' || spec.type === 'int') {
    const v = raw.trim() === '' ? NaN : Number(raw);
    if (!Number.isFinite(v)) throw new UsageError(`--${name} expects a number, got "${raw}"`);
    // Safe integers only: 1e300 is an integer to Number.isInteger, but no count, size or seed.
    if (spec.type === 'int' && !Number.isSafeInteger(v)) throw new UsageError(`--${name} expects an integer below 2^53, got "${raw}"`);
    return v;
  }
  if (spec.choices && !spec.choices.includes(raw)) {
    throw new UsageError(`--${name} must be one of ${spec.choices.join(', ')}; got "${raw}"`);
  }
  return raw;
}

export function parseArgs(argv: string[], specs: FlagSpecs, maxPositionals = 0): Parsed {
  const flags: Record<string, FlagValue> = {};
  const positionals: string[] = [];
  const byShort = new Map(Object.entries(specs).filter(([, s]) => s.short).map(([n, s]) => [s.short!, n]));
  const byAlias = new Map(Object.entries(specs).flatMap(([n, s]) => (s.aliases ?? []).map((a) => [a, n] as const)));
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--') {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    let name: string | undefined;
    let inline: string | undefined;
    if (arg.startsWith('--')) {
      const eq = arg.indexOf('=');
      name = eq >= 0 ? arg.slice(2, eq) : arg.slice(2);
      name = byAlias.get(name) ?? name;
      inline = eq >= 0 ? arg.slice(eq + 1) : undefined;
    } else if (/^-[A-Za-z]$/.test(arg)) {
      name = byShort.get(arg.slice(1));
      if (!name) throw new UsageError(`unknown flag ${arg}`);
    } else {
      positionals.push(arg);
      continue;
    }
    const spec = specs[name];
    if (!spec) {
      const known = Object.keys(specs).map((k) => `--${k}`).join(', ');
      throw new UsageError(`unknown flag --${name}; known flags: ${known}`);
    }
    if (spec.type === 'boolean') {
      if (inline !== undefined && !['true', 'false'].includes(inline)) {
        throw new UsageError(`--${name} takes no value (or =true/=false), got "${inline}"`);
      }
      flags[name] = inline === undefined ? true : inline === 'true';
      continue;
    }
    const raw = inline ?? argv[++i];
    if (raw === undefined || (inline === undefined && raw.startsWith('--'))) {
      throw new UsageError(`--${name} needs a value`);
    }
    if (spec.type === 'list') {
      const items = raw.split(',').map((s) => s.trim()).filter(Boolean);
      flags[name] = [...((flags[name] as string[] | undefined) ?? []), ...items];
    } else if (spec.repeat) {
      flags[name] = [...((flags[name] as string[] | undefined) ?? []), String(convert(name, spec, raw))];
    } else {
      if (flags[name] !== undefined) throw new UsageError(`--${name} was given twice`);
      flags[name] = convert(name, spec, raw);
    }
  }
  for (const [name, spec] of Object.entries(specs)) {
    if (flags[name] === undefined && spec.default !== undefined) flags[name] = spec.default;
  }
  if (positionals.length > maxPositionals) {
    throw new UsageError(
      maxPositionals === 0
        ? `unexpected argument "${positionals[0]}"`
        : `too many arguments: expected at most ${maxPositionals}, got ${positionals.length}`,
    );
  }
  return { flags, positionals };
}

export function formatFlags(specs: FlagSpecs): string {
  const rows = Object.entries(specs).map(([name, s]) => {
    const value = s.type === 'boolean' ? '' : ` ${s.metavar ?? (s.choices ? s.choices.join('|') : s.type.toUpperCase())}`;
    const short = [...(s.short ? [`-${s.short}`] : []), ...(s.aliases ?? []).map((a) => `--${a}`)].map((f) => `${f}, `).join('');
    const def = s.default !== undefined && s.type !== 'boolean' ? ` (default ${s.default})` : '';
    return [`  ${short}--${name}${value}`, `${s.help}${def}`];
  });
  const width = Math.min(36, Math.max(...rows.map((r) => r[0].length)) + 2);
  return rows.map(([l, r]) => (l.length >= width ? `${l}\n${' '.repeat(width)}${r}` : l.padEnd(width) + r)).join('\n');
}

/** Typed accessors that keep command code short. */
export const str = (p: Parsed, k: string): string | undefined => p.flags[k] as string | undefined;
export const num = (p: Parsed, k: string): number | undefined => p.flags[k] as number | undefined;
export const bool = (p: Parsed, k: string): boolean => p.flags[k] === true;
export const list = (p: Parsed, k: string): string[] => (p.flags[k] as string[] | undefined) ?? [];
