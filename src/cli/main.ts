// `minicpmv`: the command-line front end. Subcommands live in ./commands/ and
// are imported only when used, so `--help` stays fast.
import fs from 'node:fs';
import { UserError } from '../errors.ts';
import { formatFlags } from './args.ts';
import type { Command, CommandIO } from './command.ts';

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
  return [`usage: minicpmv ${c.name} ${c.usage}`, '', c.summary, '', 'flags:', formatFlags(c.flags), c.details ? `\n${c.details}` : '']
    .join('\n')
    .trimEnd();
}

const defaultIO: CommandIO = {
  out: (s) => process.stdout.write(s.endsWith('\n') ? s : `${s}\n`),
  err: (s, newline = true) => process.stderr.write(!newline || s.endsWith('\n') ? s : `${s}\n`),
  isTTY: Boolean(process.stderr.isTTY),
};

/** The package version, from package.json (two folders up in src/ and in dist/). */
function version(): string {
  const pkg = JSON.parse(fs.readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

export async function main(argv: string[], io: CommandIO = defaultIO): Promise<number> {
  // --verbose (any command): TensorFlow's own log lines, and every detail of an error.
  const verbose = argv.includes('--verbose');
  if (verbose) process.env.MINICPMV_VERBOSE = '1';
  const [name, ...rest] = argv.filter((a) => a !== '--verbose');
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
