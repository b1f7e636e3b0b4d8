// `minicpmv tokenize`: text to ids (as the original tokenizer, BOS added) and ids to text.
import { bool, parseArgs, str, UsageError, type FlagSpecs } from '../args.ts';
import { InputError, type Command } from '../command.ts';
import { MODEL_FLAG, modelDir } from '../common.ts';
import { forEachLine, MiB } from '../../files.ts';
import { loadTokenizer } from '../../model/model_dir.ts';

const flags: FlagSpecs = {
  ...MODEL_FLAG,
  text: { type: 'string', metavar: 'S', help: 'text to encode' },
  file: { type: 'string', metavar: 'F.jsonl', help: 'one JSON string per line; prints one JSON id list per line' },
  ids: { type: 'string', metavar: '1,2,3', help: 'ids to decode' },
  'no-bos': { type: 'boolean', help: 'do not prepend BOS when encoding' },
  json: { type: 'boolean', help: 'JSON output (ids and pieces, or the text)' },
};

/** One line of --file holds one text to encode; longer lines are refused rather than read whole. */
const MAX_LINE_BYTES = 64 * MiB;

export function parseIds(s: string, vocab: number): number[] {
  const parts = s.split(/[,\s]+/).filter(Boolean);
  if (!parts.length) throw new UsageError('--ids is empty');
  return parts.map((x) => {
    if (!/^\d+$/.test(x)) throw new UsageError(`--ids: "${x}" is not a non-negative integer`);
    const n = Number(x);
    if (n >= vocab) throw new UsageError(`--ids: ${n} is outside the vocabulary (size ${vocab})`);
    return n;
  });
}

export const command: Command = {
  name: 'tokenize',
  summary: 'text to token ids and back',
  usage: '(--text S | --file F.jsonl | --ids 1,2,3) [--model DIR] [--json]',
  flags,
  async run(argv, io) {
    const p = parseArgs(argv, flags);
    const given = ['text', 'file', 'ids'].filter((k) => p.flags[k] !== undefined);
    if (given.length !== 1) throw new UsageError(given.length ? `give only one of --${given.join(', --')}` : 'one of --text, --file or --ids is required');
    const tok = loadTokenizer(modelDir(str(p, 'model')));
    const addBos = !bool(p, 'no-bos');
    if (p.flags.ids !== undefined) {
      const text = tok.decode(parseIds(str(p, 'ids')!, tok.vocabSize));
      io.out(bool(p, 'json') ? JSON.stringify({ text }) : text);
      return 0;
    }
    if (p.flags.text !== undefined) {
      const ids = tok.encode(str(p, 'text')!, { addBos });
      io.out(bool(p, 'json') ? JSON.stringify({ ids, pieces: ids.map((i) => tok.idToPiece(i)) }) : ids.join(' '));
      return 0;
    }
    // Line by line, so a file of any size takes bounded memory and `| head -1` stops the reading at once.
    const file = str(p, 'file')!;
    forEachLine(file, `--file ${file}`, MAX_LINE_BYTES, (m) => new InputError(m), (line, n) => {
      if (line.trim() === '') return;
      let s: unknown;
      try {
        s = JSON.parse(line);
      } catch {
        throw new UsageError(`${file}:${n}: not a JSON string`);
      }
      if (typeof s !== 'string') throw new UsageError(`${file}:${n}: expected a JSON string, got ${typeof s}`);
      io.out(JSON.stringify(tok.encode(s, { addBos })));
    });
    return 0;
  },
};
