// `minicpmv inspect`: runs the model once and shows inside it in a browser (src/inspect/): where the
// resampler looks, the logit lens, activation statistics along depth, the decoding steps and, with
// --compare, the divergence from a dump. Serves one page on 127.0.0.1 and prints its URL, or writes the
// page as one self-contained file (--static).
import fs from 'node:fs';
import path from 'node:path';
import { num, parseArgs, str, UsageError, type FlagSpecs } from '../args.ts';
import { InputError, type Command } from '../command.ts';
import { BACKEND_FLAG, MODEL_FLAG, loadWithProgress, modelDir, peakRssMiB, readMsgs, startBackend } from '../common.ts';
import { command as chat, decodeOptions } from './chat.ts';
import { loadImage } from '../../image/decode.ts';
import { collectInspection, type InspectDecode } from '../../inspect/collect.ts';
import { DumpComparer } from '../../inspect/divergence.ts';
import { dataJson, staticPage } from '../../inspect/page.ts';
import { startServer, type InspectServer } from '../../inspect/server.ts';
import { buildPrompt, encodePrompt, ORIGINAL_DEFAULTS, type ChatMessage, type DecodeMode } from '../../model/chat.ts';
import { isBundledModel, loadModelConfig, loadTokenizer } from '../../model/load.ts';

export const DEFAULT_PORT = 7788;

const pick = (...names: string[]): FlagSpecs => Object.fromEntries(names.map((n) => [n, chat.flags[n]]));

const flags: FlagSpecs = {
  ...MODEL_FLAG,
  ...pick('image', 'prompt', 'msgs', 'decode', 'beams', 'repetition-penalty', 'temperature', 'top-p', 'top-k', 'seed', 'max-new-tokens'),
  compare: { type: 'string', metavar: 'DUMP.safetensors', help: 'overlay the divergence from a dump (reference/dump_activations.py or minicpmv trace) of the same input' },
  port: { type: 'int', metavar: 'N', help: `serve on 127.0.0.1:N (default ${DEFAULT_PORT}; 0 = any free port)` },
  static: { type: 'string', metavar: 'OUT.html', help: 'write the page as one self-contained file (data inlined) instead of serving it' },
  'lens-positions': { type: 'int', metavar: 'N', default: 8, help: 'last prompt positions shown by the logit lens' },
  candidates: { type: 'int', metavar: 'K', default: 5, help: 'candidates listed for each greedy/sampling step' },
  ...BACKEND_FLAG,
};

/** Resolves once SIGINT or SIGTERM arrives (the server then stops). */
function untilStopped(): Promise<void> {
  return new Promise((resolve) => {
    const stop = () => { process.off('SIGINT', stop); process.off('SIGTERM', stop); resolve(); };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
}

export const command: Command = {
  name: 'inspect',
  summary: 'see inside the model in a browser: attention, logit lens, activations, decoding, divergence',
  usage: '--image FILE (--prompt TEXT | --msgs FILE.json) [--model DIR] [--decode beam|greedy|sample] [--compare DUMP.safetensors] [--port N | --static OUT.html]',
  flags,
  details: [
    'The page (plain HTML, canvas and SVG; nothing from the internet) shows:',
    '  1. the resampler\'s cross-attention over the patch grid, per query and head (hook resampler.attn.weights)',
    '  2. the logit lens: top-5 next tokens read from every decoder layer at the last prompt positions and every generated token',
    '  3. mean, std, max |x| and NaN counts of every hook along depth',
    '  4. the decoding: each step\'s candidates; for beam search the beams, reorderings and finished hypotheses',
    '  5. with --compare: every hook against the dump under the tolerance policy, the first failing module highlighted',
    '',
    'examples:',
    '  minicpmv inspect --image examples/red_ball.png --prompt "What is in the image?"',
    '  minicpmv inspect --model ~/MiniCPM-V --image photo.jpg --prompt "Describe it." --decode greedy --compare torch.safetensors',
    '  minicpmv inspect --image photo.jpg --prompt "What is it?" --static report.html',
  ].join('\n'),
  async run(argv, io) {
    const p = parseArgs(argv, flags);
    const image = str(p, 'image'), prompt = str(p, 'prompt'), msgsFile = str(p, 'msgs'), out = str(p, 'static'), dump = str(p, 'compare');
    if (!image) throw new UsageError('--image FILE is required');
    if ((prompt === undefined) === (msgsFile === undefined)) throw new UsageError('give exactly one of --prompt TEXT or --msgs FILE.json');
    if (prompt !== undefined && prompt.trim() === '') throw new UsageError('--prompt is empty');
    if (out !== undefined && p.flags.port !== undefined) throw new UsageError('--static writes a file and serves nothing: drop --port');
    const port = num(p, 'port') ?? DEFAULT_PORT;
    if (port < 0 || port > 65535) throw new UsageError(`--port must be in 0..65535, got ${port}`);
    const lensPositions = num(p, 'lens-positions')!, candidates = num(p, 'candidates')!;
    if (lensPositions < 1) throw new UsageError(`--lens-positions must be at least 1, got ${lensPositions}`);
    if (candidates < 1 || candidates > 50) throw new UsageError(`--candidates must be in 1..50, got ${candidates}`);
    const dir = modelDir(str(p, 'model'));
    const bundled = isBundledModel(dir);
    const o = decodeOptions(p, bundled);
    const mode = o.mode as DecodeMode;
    const decode: InspectDecode = {
      mode, maxNewTokens: o.maxNewTokens!, numBeams: o.numBeams ?? ORIGINAL_DEFAULTS.numBeams,
      // As chat(): the original's repetition penalty belongs to beam search; greedy and sampling apply none unless asked.
      repetitionPenalty: o.repetitionPenalty ?? (mode === 'beam' ? ORIGINAL_DEFAULTS.repetitionPenalty : 1),
      temperature: o.temperature ?? ORIGINAL_DEFAULTS.temperature, topK: o.topK ?? ORIGINAL_DEFAULTS.topK,
      topP: o.topP ?? ORIGINAL_DEFAULTS.topP, seed: o.seed ?? ORIGINAL_DEFAULTS.seed,
    };
    // Every input is checked before the (slow) weights load.
    const msgs: ChatMessage[] = msgsFile ? readMsgs(msgsFile) : [{ role: 'user', content: prompt! }];
    const cfg = loadModelConfig(dir);
    const tokenizer = loadTokenizer(dir);
    const promptLength = encodePrompt(tokenizer, buildPrompt(msgs, cfg.resampler.numQueries)).ids.length;
    const img = loadImage(image);
    if (out !== undefined) {
      const parent = path.dirname(path.resolve(out));
      if (!fs.existsSync(parent) || !fs.statSync(parent).isDirectory()) throw new InputError(`--static ${out}: folder ${parent} does not exist`);
      if (fs.existsSync(out) && fs.statSync(out).isDirectory()) throw new InputError(`--static ${out} is a directory`);
    }
    const comparer = dump !== undefined ? DumpComparer.open(dump, cfg, promptLength) : undefined;
    let server: InspectServer | undefined;
    try {
      if (out === undefined) server = await startServer(port); // a port in use fails here, before the model runs
      const backend = await startBackend(io, str(p, 'backend'));
      const { model } = await loadWithProgress(io, dir);
      const t0 = performance.now();
      let data;
      try {
        data = collectInspection(model, tokenizer, {
          msgs, image: img, decode, lensPositions, candidates, compare: comparer,
          onStage: (s) => io.err(`inspect: ${s}`),
          meta: {
            model: dir, image, backend: backend.name,
            ...(bundled ? { note: 'The bundled tiny model has RANDOM weights: its answers, attention and lens are noise; they show the pipeline.' } : {}),
          },
        });
      } finally {
        model.dispose(); // the page needs only the data: the weights go before serving
      }
      io.err(`inspect: ran in ${((performance.now() - t0) / 1000).toFixed(1)} s; peak RSS ${peakRssMiB().toFixed(0)} MiB; ` +
        `answer: ${JSON.stringify(data.answer)}${data.divergence ? `; first failing module: ${data.divergence.firstFailure ?? 'none'}` : ''}`);
      if (out !== undefined) {
        const html = staticPage(data);
        try {
          fs.writeFileSync(out, html);
        } catch (e) {
          throw new InputError(`--static ${out}: cannot write (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
        }
        io.err(`inspect: wrote ${out} (${(html.length / 2 ** 20).toFixed(1)} MiB, self-contained)`);
        return 0;
      }
      server!.ready(dataJson(data));
      io.out(server!.url);
      io.err(`inspect: serving ${server!.url} (Ctrl-C stops)`);
      await untilStopped();
      return 0;
    } finally {
      comparer?.close();
      await server?.close();
    }
  },
};
