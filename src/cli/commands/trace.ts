// `minicpmv trace`: run a prompt through the model and record activations by
// PyTorch module path, for `minicpmv compare` against a PyTorch dump
// (reference/dump_activations.py writes the same keys).
import fs from 'node:fs';
import * as tf from '../../tfjs.ts';
import { list, num, parseArgs, str, UsageError, type FlagSpecs } from '../args.ts';
import { InputError, type Command } from '../command.ts';
import { BACKEND_FLAG, MODEL_FLAG, WEIGHTS_DTYPE_FLAG, loadWithProgress, modelDir, readMsgs, startBackend } from '../common.ts';
import type { WeightsDtypeOption } from '../../model/minicpmv.ts';
import { progress } from '../progress.ts';
import { openRegularFile } from '../../files.ts';
import { loadImage } from '../../image/decode.ts';
import { preprocess } from '../../image/preprocess.ts';
import { buildPrompt, encodePrompt, type ChatMessage } from '../../model/chat.ts';
import { greedy, MAX_NEW_TOKENS } from '../../model/generate.ts';
import { hookNames, hookSummary, Hooks } from '../../model/hooks.ts';
import { loadModelConfig, loadTokenizer } from '../../model/load.ts';
import { ActivationRecorder } from '../../parity/trace.ts';
import { compileGlobs, matchKey } from '../../parity/globs.ts';
import { SafetensorsFile } from '../../weights/safetensors.ts';

const flags: FlagSpecs = {
  ...MODEL_FLAG,
  image: { type: 'string', metavar: 'FILE', help: 'image file (PNG or JPEG)' },
  prompt: { type: 'string', metavar: 'TEXT', help: 'the question' },
  msgs: { type: 'string', metavar: 'FILE.json', help: 'a conversation: JSON list of {role, content}' },
  out: { type: 'string', metavar: 'FILE.safetensors', help: 'where to write the activations (a .summary.json goes beside it)' },
  hooks: { type: 'list', metavar: 'GLOBS', help: 'comma-separated key globs (* = one dotted segment, ** = any); default: every hook' },
  'new-tokens': { type: 'int', metavar: 'N', default: 0, help: 'also run N greedy steps and record their ids as greedy.ids' },
  patch: { type: 'string', repeat: true, metavar: 'KEY=FILE', help: 'replace hook KEY\'s output with the tensor KEY (or the only tensor) of FILE' },
  ...BACKEND_FLAG,
  ...WEIGHTS_DTYPE_FLAG,
};

function abbreviate(keys: string[]): string {
  const short = [...new Set(keys.map((k) => k.replace(/\.\d+(\.|$)/, '.{i}$1')))];
  return short.join(', ');
}

function readPatches(specs: string[], valid: string[]): Map<string, tf.Tensor> {
  const patches = new Map<string, tf.Tensor>();
  for (const spec of specs) {
    const eq = spec.indexOf('=');
    if (eq <= 0) throw new UsageError(`--patch expects KEY=FILE.safetensors, got "${spec}"`);
    const key = spec.slice(0, eq), file = spec.slice(eq + 1);
    if (!valid.includes(key)) throw new UsageError(`--patch: unknown hook "${key}"; valid hooks: ${abbreviate(valid)}`);
    fs.closeSync(openRegularFile(file, `--patch file ${file}`, (m) => new InputError(m)).fd);
    const f = SafetensorsFile.open(file);
    try {
      const name = f.has(key) ? key : f.keys().length === 1 ? f.keys()[0] : undefined;
      if (!name) throw new InputError(`--patch file ${file} has no tensor "${key}" (and more than one tensor)`);
      patches.set(key, tf.tensor(f.readFloat32(name), f.info(name).shape, 'float32'));
    } finally {
      f.close();
    }
  }
  return patches;
}

export const command: Command = {
  name: 'trace',
  summary: 'record activations by PyTorch module name',
  usage: '--image FILE (--prompt TEXT | --msgs FILE.json) --out FILE.safetensors [--hooks GLOBS] [--new-tokens N] [--patch KEY=FILE]',
  flags,
  details: `hook names: ${hookSummary()}\n` +
    'example: minicpmv trace --image img.png --prompt "What is it?" --hooks "vpm.blocks.*,llm.model.layers.*,logits" --out mine.safetensors',
  async run(argv, io) {
    const p = parseArgs(argv, flags);
    const image = str(p, 'image'), out = str(p, 'out'), prompt = str(p, 'prompt'), msgsFile = str(p, 'msgs');
    if (!image) throw new UsageError('--image FILE is required');
    if (!out) throw new UsageError('--out FILE.safetensors is required');
    if ((prompt === undefined) === (msgsFile === undefined)) throw new UsageError('give exactly one of --prompt or --msgs');
    if (prompt !== undefined && prompt.trim() === '') throw new UsageError('--prompt is empty');
    const newTokens = num(p, 'new-tokens')!;
    if (newTokens < 0 || newTokens > MAX_NEW_TOKENS) throw new UsageError(`--new-tokens must be an integer in 0..${MAX_NEW_TOKENS}, got ${newTokens}`);
    const dir = modelDir(str(p, 'model'));
    const cfg = loadModelConfig(dir);
    const valid = hookNames(cfg);
    const globs = list(p, 'hooks');
    for (const g of globs) {
      if (!valid.some((k) => matchKey(g, k))) throw new UsageError(`--hooks: "${g}" matches no hook; valid hooks: ${abbreviate(valid)}`);
    }
    const select = globs.length ? compileGlobs(globs) : () => true;
    const msgs: ChatMessage[] = msgsFile ? readMsgs(msgsFile) : [{ role: 'user', content: prompt! }];
    const tokenizer = loadTokenizer(dir);
    const encoded = encodePrompt(tokenizer, buildPrompt(msgs, cfg.resampler.numQueries));
    const pixels = preprocess(loadImage(image), cfg.vision.imageSize);
    await startBackend(io, str(p, 'backend'));
    const patches = readPatches((p.flags.patch as string[] | undefined) ?? [], valid);
    const { model } = await loadWithProgress(io, dir, { weightsDtype: str(p, 'weights-dtype') as WeightsDtypeOption });
    const recorder = new ActivationRecorder(out);
    const selected = valid.filter(select).length;
    const bar = progress(io, 'tracing');
    let seen = 0;
    const hooks = new Hooks({
      select, patches,
      onActivation: (key, t) => { recorder.record(key, t); bar.update(++seen, selected, key); },
    });
    try {
      tf.tidy(() => {
        const embeds = model.promptEmbeds({ pixelValues: pixels, inputIds: encoded.ids, imageBounds: encoded.bounds }, hooks);
        model.llm.forward(embeds, { hooks, logits: 'all' });
        if (newTokens > 0) {
          const gen = greedy(model.llm, embeds, { maxNewTokens: newTokens, eosId: tokenizer.eosId });
          recorder.record('greedy.ids', { shape: [gen.length], data: Int32Array.from(gen) });
        }
      });
      const unused = hooks.unused();
      if (unused.length) throw new UsageError(`--patch: hook(s) ${unused.join(', ')} never ran`);
      const r = recorder.finish({ format: 'minicpmv-ts trace', model: dir, image, prompt: JSON.stringify(msgs) });
      bar.finish(`${recorder.entries.length} tensors -> ${r.file} (+ ${r.summary})`);
      return 0;
    } catch (e) {
      recorder.abort();
      throw e;
    } finally {
      tf.dispose([...patches.values()]);
      model.dispose();
    }
  },
};
