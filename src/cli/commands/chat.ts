// `minicpmv chat`: one question (or a conversation) about one image.
import readline from 'node:readline';
import { bool, num, parseArgs, str, UsageError, type FlagSpecs } from '../args.ts';
import type { Command, CommandIO } from '../command.ts';
import { BACKEND_FLAG, MODEL_FLAG, WEIGHTS_DTYPE_FLAG, backendJson, loadWithProgress, modelDir, peakRssMiB, readMsgs, startBackend } from '../common.ts';
import { UserError } from '../../errors.ts';
import { loadImage } from '../../image/decode.ts';
import { buildPrompt, ChatSession, cleanOutput, encodePrompt, ORIGINAL_DEFAULTS, PromptError, tooLong, type AskOptions, type ChatMessage, type ChatReply, type DecodeMode } from '../../model/chat.ts';
import { checkDecodeOptions, type DecodeRanges } from '../../model/generate.ts';
import type { WeightsDtypeOption } from '../../model/minicpmv.ts';
import { isBundledModel, loadModelConfig, loadTokenizer } from '../../model/model_dir.ts';
import type { MiniCPMTokenizer } from '../../tokenizer/tokenizer.ts';

/** The bundled random model would run to 2048 tokens without meeting EOS; keep its demo short. */
const BUNDLED_MAX_NEW_TOKENS = 48;

const flags: FlagSpecs = {
  ...MODEL_FLAG,
  image: { type: 'string', metavar: 'FILE', help: 'image file (PNG or JPEG)' },
  prompt: { type: 'string', short: 'p', metavar: 'TEXT', help: 'the question' },
  msgs: { type: 'string', metavar: 'FILE.json', help: 'a conversation: JSON list of {role, content}; the image goes to the first user message' },
  decode: { type: 'string', choices: ['beam', 'greedy', 'sample'], default: 'beam', help: 'decoding; beam is the original default' },
  beams: { type: 'int', metavar: 'N', help: `beam count (default ${ORIGINAL_DEFAULTS.numBeams})` },
  'repetition-penalty': { type: 'number', metavar: 'X', help: `penalty on generated ids (default ${ORIGINAL_DEFAULTS.repetitionPenalty} for beam, none otherwise)` },
  temperature: { type: 'number', aliases: ['temp'], metavar: 'T', help: `sampling temperature (default ${ORIGINAL_DEFAULTS.temperature})` },
  'top-p': { type: 'number', metavar: 'P', help: `nucleus sampling mass in (0,1] (default ${ORIGINAL_DEFAULTS.topP})` },
  'top-k': { type: 'int', metavar: 'K', help: `keep the K most likely tokens, 0 = all (default ${ORIGINAL_DEFAULTS.topK})` },
  seed: { type: 'int', metavar: 'N', help: 'sampling seed (default 0)' },
  'max-new-tokens': { type: 'int', short: 'n', metavar: 'N', help: `new-token limit (default ${ORIGINAL_DEFAULTS.maxNewTokens}; ${BUNDLED_MAX_NEW_TOKENS} with the bundled tiny model)` },
  truncate: { type: 'boolean', help: 'a prompt over 2048 tokens keeps its first 2048, as the original chat() does (else it is refused)' },
  json: { type: 'boolean', help: 'print {answer, tokens, timings, backend, weights} as JSON (tokens: generated ids before clean-up)' },
  interactive: { type: 'boolean', short: 'i', help: 'keep the image and history, ask questions from stdin (/clear, /image PATH, /quit)' },
  ...BACKEND_FLAG,
  ...WEIGHTS_DTYPE_FLAG,
};

/** The flag behind each decoding option, for messages. */
const FLAG_OF: Record<keyof DecodeRanges, string> = {
  maxNewTokens: 'max-new-tokens', numBeams: 'beams', repetitionPenalty: 'repetition-penalty',
  temperature: 'temperature', topP: 'top-p', topK: 'top-k', seed: 'seed',
};

export function decodeOptions(p: ReturnType<typeof parseArgs>, bundled: boolean): AskOptions {
  const mode = str(p, 'decode') as DecodeMode;
  const sampling = ['temperature', 'top-p', 'top-k', 'seed'].filter((k) => p.flags[k] !== undefined);
  if (mode !== 'sample' && sampling.length) throw new UsageError(`--${sampling[0]} only applies to --decode sample`);
  if (mode !== 'beam' && p.flags.beams !== undefined) throw new UsageError('--beams only applies to --decode beam');
  const o: AskOptions = {
    mode,
    maxNewTokens: num(p, 'max-new-tokens') ?? (bundled ? BUNDLED_MAX_NEW_TOKENS : ORIGINAL_DEFAULTS.maxNewTokens),
    numBeams: num(p, 'beams'), repetitionPenalty: num(p, 'repetition-penalty'),
    temperature: num(p, 'temperature'), topP: num(p, 'top-p'), topK: num(p, 'top-k'), seed: num(p, 'seed'),
  };
  checkDecodeOptions(o, (k) => `--${FLAG_OF[k]}`);
  return o;
}

function summary(io: CommandIO, r: ChatReply, loadMs: number): void {
  const t = r.timings;
  const parts = [
    loadMs ? `load ${(loadMs / 1000).toFixed(2)} s` : '',
    t.imageEncodeMs ? `image encode ${(t.imageEncodeMs / 1000).toFixed(2)} s` : '',
    `prefill ${t.prefillTokens} tok at ${t.prefillTokPerS.toFixed(1)} tok/s`,
    `decode ${t.decodeSteps} steps at ${t.decodeTokPerS.toFixed(2)} step/s`,
    `peak RSS ${peakRssMiB().toFixed(0)} MiB`,
  ].filter(Boolean);
  io.err(`[${parts.join(' | ')}${r.stopped ? ' | interrupted' : ''}]`);
  for (const w of r.warnings) io.err(`warning: ${w}`);
}

const INTERACTIVE_HELP = 'interactive: type a question and press Enter; /clear starts a new conversation on the same image, ' +
  '/image PATH changes the image, /quit (or an empty line, or Ctrl-D) ends; Ctrl-C stops an answer.';

/** A one-line status on stderr, redrawn at most every 100 ms: "beam search: step N | best so far". */
function beamProgress(tokenizer: MiniCPMTokenizer, write: (s: string) => void = (s) => process.stderr.write(s)) {
  let last = 0, shown = false;
  return {
    step(step: number, best: readonly number[]): void {
      const now = performance.now();
      if (now - last < 100) return;
      last = now;
      const text = cleanOutput(tokenizer, [...best]).replace(/\s+/g, ' ');
      const width = Math.max(20, (process.stderr.columns ?? 100) - 32);
      write(`\r\x1b[2Kbeam search: step ${step} | ${text.length > width ? `…${text.slice(-width + 1)}` : text}`);
      shown = true;
    },
    clear(): void {
      if (shown) write('\r\x1b[2K');
      shown = false;
    },
  };
}

export const command: Command = {
  name: 'chat',
  summary: 'answer a question about an image',
  usage: '--image FILE (--prompt TEXT | --msgs FILE.json | -i) [--model DIR] [--decode beam|greedy|sample] [...]',
  flags,
  details: [
    'examples:',
    '  minicpmv chat --image examples/red_ball.png --prompt "What is in the image?"',
    '  minicpmv chat -m ~/MiniCPM-V --image photo.jpg -p "Describe it." --decode greedy -n 64',
    '  minicpmv chat --image photo.jpg -i          # interactive: one question per line',
    'Ctrl-C stops an answer and prints what came so far (interactive: back to the prompt).',
  ].join('\n'),
  async run(argv, io) {
    const p = parseArgs(argv, flags);
    const image = str(p, 'image');
    if (!image) throw new UsageError('--image FILE is required');
    const prompt = str(p, 'prompt'), msgsFile = str(p, 'msgs');
    if (prompt !== undefined && msgsFile !== undefined) throw new UsageError('give either --prompt or --msgs, not both');
    const interactive = bool(p, 'interactive'), json = bool(p, 'json');
    if (interactive && json) throw new UsageError('--interactive and --json cannot be combined');
    if (!interactive && prompt === undefined && msgsFile === undefined) throw new UsageError('--prompt TEXT or --msgs FILE.json is required (or -i)');
    if (prompt !== undefined && prompt.trim() === '') throw new UsageError('--prompt is empty');
    const dir = modelDir(str(p, 'model'));
    const opts: AskOptions = { ...decodeOptions(p, isBundledModel(dir)), truncate: bool(p, 'truncate') };
    const msgs: ChatMessage[] | undefined = msgsFile ? readMsgs(msgsFile) : prompt !== undefined ? [{ role: 'user', content: prompt }] : undefined;
    // Check the inputs before the (slow) weights, so a mistake fails at once.
    const cfg = loadModelConfig(dir);
    let img = loadImage(image);
    const tokenizer = loadTokenizer(dir);
    if (msgs) {
      // The prompt's length is known before anything loads: refuse a too-long one now, or say what is cut.
      const e = encodePrompt(tokenizer, buildPrompt(msgs, cfg.resampler.numQueries));
      if (e.truncated && !opts.truncate) throw new PromptError(tooLong(e.fullLength));
      if (e.truncated) io.err(`note: the prompt has ${e.fullLength} tokens; keeping the first ${e.ids.length}, as the original chat() does (${e.fullLength - e.ids.length} cut from the end)`);
    }
    const backend = await startBackend(io, str(p, 'backend'), json);
    const { model, ms: loadMs } = await loadWithProgress(io, dir, { weightsDtype: str(p, 'weights-dtype') as WeightsDtypeOption });
    let session = new ChatSession(model, tokenizer, img);
    const streams = !json && opts.mode !== 'beam';
    // Beam search settles its answer only at the end: on a terminal, show the step and the best beam so far.
    const beamStatus = !json && opts.mode === 'beam' && io.isTTY ? beamProgress(tokenizer) : undefined;
    const ask = async (m: ChatMessage[]): Promise<ChatReply> => {
      // Ctrl-C stops this answer (the reply says so); outside an answer it keeps its usual meaning.
      const stop = new AbortController();
      const onSigint = () => stop.abort();
      process.on('SIGINT', onSigint);
      let r: ChatReply;
      try {
        r = await session.replyAsync(m, {
          ...opts, signal: stop.signal,
          onText: streams ? (d) => process.stdout.write(d) : undefined,
          onStep: beamStatus ? (s) => {
            if (s.kind !== 'beam') return;
            const best = s.candidates.find((c) => c.fate === 'continues'); // candidates come best first
            beamStatus.step(s.step, best ? [...s.beams[best.beam], best.token] : []);
          } : undefined,
        });
      } finally {
        process.off('SIGINT', onSigint);
        beamStatus?.clear();
      }
      if (json) {
        io.out(JSON.stringify({
          answer: r.answer, tokens: r.tokens, stopped: r.stopped, warnings: r.warnings,
          timings: { loadMs, ...r.timings, peakRssMiB: peakRssMiB() },
          backend: backendJson(backend), weights: model.residentWeights(),
        }));
      } else if (streams) process.stdout.write('\n');
      else io.out(r.answer);
      return r;
    };
    try {
      if (msgs) {
        const r = await ask(msgs);
        summary(io, r, loadMs);
        if (r.stopped && !interactive) return 130;
      }
      if (!interactive) return 0;
      const rl = readline.createInterface({ input: process.stdin, terminal: false });
      io.err(INTERACTIVE_HELP);
      io.err('> ', false);
      for await (const line of rl) {
        const text = line.trim();
        if (text === '' || text === '/quit' || text === '/exit') break;
        try {
          if (text === '/clear') {
            session.history.splice(0);
            io.err('(new conversation, same image)');
          } else if (text.startsWith('/image')) {
            const file = text.slice('/image'.length).trim();
            if (!file) throw new UsageError('/image needs a file: /image PATH');
            img = loadImage(file);
            session.dispose();
            session = new ChatSession(model, tokenizer, img);
            io.err(`(new conversation about ${file})`);
          } else if (text.startsWith('/')) {
            io.err(`unknown command ${text.split(/\s/)[0]}; /clear, /image PATH, /quit`);
          } else {
            summary(io, await ask([...session.history, { role: 'user', content: line }]), 0);
          }
        } catch (e) {
          if (e instanceof UserError) io.err(`minicpmv chat: ${e.message}`);
          else throw e;
        }
        io.err('> ', false);
      }
      return 0;
    } finally {
      session.dispose();
      model.dispose();
    }
  },
};
