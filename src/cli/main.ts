// `minicpmv`: the command-line front end. Subcommands live in ./commands/ and
// are imported only when used, so `--help` stays fast.
import fs from 'node:fs';
import { UserError } from '../errors.ts';
import { formatFlags, type FlagSpecs } from './args.ts';
import { StdoutClosed, type Command, type CommandIO } from './command.ts';

const COMMANDS: Record<string, { summary: string; load: () => Promise<Command> }> = {
  chat: { summary: 'answer a question about an image', load: async () => (await import('./commands/chat.ts')).command },
  tokenize: { summary: 'text to token ids and back', load: async () => (await import('./commands/tokenize.ts')).command },
  info: { summary: 'config summary, parameter counts, memory, backend', load: async () => (await import('./commands/info.ts')).command },
  convert: { summary: 'convert an HF checkpoint to the project layout', load: async () => (await import('./commands/convert.ts')).command },
  'random-weights': { summary: 'write a random checkpoint for a config', load: async () => (await import('./commands/random_weights.ts')).command },
  trace: { summary: 'record activations by PyTorch module name', load: async () => (await import('./commands/trace.ts')).command },
  compare: { summary: 'compare two activation files key by key', load: async () => (await import('./commands/compare.ts')).command },
  inspect: { summary: 'see inside the model in a browser: attention, logit lens, activations, decoding, divergence', load: async () => (await import('./commands/inspect.ts')).command },
};

function topHelp(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((k) => k.length)) + 2;
  return [
    'minicpmv: MiniCPM-V v1 (OmniLMM-3B) in TypeScript on TensorFlow.js',
    '',
    'usage: minicpmv <command> [flags]',
    '',
    'commands:',
    ...Object.entries(COMMANDS).map(([k, c]) => `  ${k.padEnd(width)}${c.summary}`),
    '',
    'Run `minicpmv <command> --help` for the flags of a command. Any command takes --verbose (TensorFlow\'s',
    'log lines, and every detail of an error).',
    'Without --model, chat/info/tokenize/trace/inspect use the bundled tiny random-weight model.',
  ].join('\n');
}

export function commandHelp(c: Command): string {
  return [`usage: minicpmv ${c.name} ${c.usage}`, '', c.summary, '', 'flags:', formatFlags({ ...c.flags, ...GLOBAL_FLAGS }),
    c.details ? `\n${c.details}` : '']
    .join('\n')
    .trimEnd();
}

/** Flags every command takes; main() removes them before the command parses its own. */
const GLOBAL_FLAGS: FlagSpecs = {
  verbose: { type: 'boolean', help: 'TensorFlow\'s own log lines, and on an error every problem behind it (e.g. each checkpoint mismatch)' },
};

const line = (s: string) => (s.endsWith('\n') ? s : `${s}\n`);
const closedPipe = (e: NodeJS.ErrnoException) => e.code === 'EPIPE' || e.code === 'ERR_STREAM_DESTROYED';

// On Linux a write to a pipe is synchronous, and a reader that went away (`| head -1`) marks stdout
// destroyed at once: the next `out` stops the command (StdoutClosed) instead of writing into the void.
const defaultIO: CommandIO = {
  out: (s) => {
    if (!process.stdout.destroyed) process.stdout.write(line(s));
    if (process.stdout.destroyed) throw new StdoutClosed();
  },
  err: (s, newline = true) => {
    if (!process.stderr.destroyed) process.stderr.write(newline ? line(s) : s);
  },
  isTTY: Boolean(process.stderr.isTTY),
};

/** The package version, from package.json (two folders up in src/ and in dist/). */
function version(): string {
  const pkg = JSON.parse(fs.readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

let streamsWatched = false;
/**
 * A closed stdout ends the process quietly, with the exit code so far (0 unless set); a closed stderr is
 * ignored. Without these handlers Node reports the EPIPE as an unhandled 'error' event: a stack trace and
 * exit 1. Writes that bypass `io.out` (streamed chat text) land here too.
 */
function watchStreams(): void {
  if (streamsWatched) return;
  streamsWatched = true;
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (!closedPipe(e)) process.stderr.write(`minicpmv: cannot write the output (${e.code ?? e.message})\n`);
    process.exit(closedPipe(e) ? (process.exitCode ?? 0) : 2);
  });
  process.stderr.on('error', (e: NodeJS.ErrnoException) => {
    if (!closedPipe(e)) process.exit(2);
  });
}

export async function main(argv: string[], io: CommandIO = defaultIO): Promise<number> {
  if (io === defaultIO) watchStreams();
  try {
    return await dispatch(argv, io);
  } catch (e) {
    if (e instanceof StdoutClosed) return process.exitCode === undefined ? 0 : Number(process.exitCode);
    throw e;
  }
}

async function dispatch(argv: string[], io: CommandIO): Promise<number> {
  const [name, ...all] = argv;
  // --verbose is global: taken out before the command's own (strict) flag parsing, but not after `--`.
  const end = all.includes('--') ? all.indexOf('--') : all.length;
  const verbose = all.slice(0, end).includes('--verbose');
  if (verbose) process.env.MINICPMV_VERBOSE = '1'; // also lets TensorFlow's own log lines through
  const rest = all.filter((a, i) => i >= end || a !== '--verbose');
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    io.out(topHelp());
    return name === undefined ? 2 : 0;
  }
  if (name === '--version') {
    io.out(`minicpmv-ts ${version()}`);
    return 0;
  }
  const entry = COMMANDS[name];
  if (!entry) {
    io.err(`minicpmv: unknown command "${name}"; commands: ${Object.keys(COMMANDS).join(', ')}`);
    return 2;
  }
  try {
    const cmd = await entry.load();
    if (rest.includes('--help') || rest.includes('-h')) {
      io.out(commandHelp(cmd));
      return 0;
    }
    return await cmd.run(rest, io);
  } catch (e) {
    if (e instanceof StdoutClosed) throw e;
    if (e instanceof UserError) {
      io.err(`minicpmv ${name}: ${e.message}`);
      if (e.details.length && verbose) for (const d of e.details) io.err(`  - ${d}`);
      return 2;
    }
    io.err(`minicpmv ${name}: internal error: ${(e as Error)?.message?.split('\n')[0] ?? String(e)}`);
    if (process.env.MINICPMV_DEBUG) io.err(String((e as Error)?.stack));
    else io.err('(set MINICPMV_DEBUG=1 for the stack trace; please report it)');
    return 3;
  }
}
