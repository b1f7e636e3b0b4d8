// Tokenizer throughput: `npx tsx bench/tokenizer.ts` (about 15 s). Text is the mixed corpus of
// test/fixtures/tokenizer (prose, Chinese, code, emoji, odd whitespace, special strings); MB = 1e6 UTF-8 bytes of
// input text. One run reports: the very first pass (JIT and cache cold), ~1 MB of mostly unseen words with the
// segment cache cleared, warm passes, one long Chinese run (no spaces: the heap path, not the cache), decode, and
// the baseline measured in the same run: the slow O(n^2) merge oracle vs the heap merge, both without cache.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { mergeSegmentSlow, SentencePieceBpe } from '../src/tokenizer/bpe.ts';
import { parseSentencePieceModel, PieceType } from '../src/tokenizer/sentencepiece_model.ts';
import { loadTokenizerFile } from '../src/tokenizer/file.ts';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const realModel = path.resolve(repo, '..', 'shared', 'reference', 'tokenizer.model');
const modelPath = fs.existsSync(realModel) ? realModel : path.join(repo, 'test/fixtures/tokenizer/tiny_identity.model');
const lines: string[] = JSON.parse(fs.readFileSync(path.join(repo, 'test/fixtures/tokenizer/corpus_ids.json'), 'utf8'))
  .lines.map((l: { text: string }) => l.text);
const bytesOf = (xs: string[]) => xs.reduce((n, s) => n + Buffer.byteLength(s), 0);
const mbps = (bytes: number, ms: number) => `${(bytes / 1e6 / (ms / 1e3)).toFixed(2)} MB/s`;

function time(fn: () => void, minMs = 0): number {
  let reps = 0;
  const t0 = performance.now();
  do { fn(); reps++; } while (performance.now() - t0 < minMs);
  return (performance.now() - t0) / reps;
}

// ~1 MB of lines whose longer words are altered deterministically, so most segments miss the cache.
let k = 0;
const unseen: string[] = [];
while (bytesOf(unseen) < 1e6) {
  for (const s of lines) unseen.push(s.replace(/[a-z]{4,}/g, (w) => w.slice(0, 2) + String.fromCharCode(97 + (k++ % 26)) + w.slice(3)));
}

const t0 = performance.now();
const tok = loadTokenizerFile(modelPath);
console.log(`model ${path.relative(repo, modelPath)}: load ${(performance.now() - t0).toFixed(0)} ms; node ${process.version}`);
console.log(`corpus: ${lines.length} lines, ${(bytesOf(lines) / 1e3).toFixed(1)} kB; unseen-word variant ${(bytesOf(unseen) / 1e6).toFixed(2)} MB`);

let nTok = 0;
console.log(`encode, first pass (JIT + cache cold): ${mbps(bytesOf(lines), time(() => { for (const s of lines) nTok += tok.encode(s).length; }))} (${nTok} tokens)`);
tok.clearCache();
console.log(`encode, unseen words, cache cleared : ${mbps(bytesOf(unseen), time(() => { for (const s of unseen) tok.encode(s); }))}`);
console.log(`encode, warm                        : ${mbps(bytesOf(lines), time(() => { for (const s of lines) tok.encode(s); }, 1500))}`);

const zh = lines.filter((s) => /[\u4e00-\u9fff]{8}/.test(s)).join('').replace(/[\s，。！？：、]/g, '');
const longZh = zh.repeat(Math.ceil(200_000 / zh.length)).slice(0, 200_000);
console.log(`encode, one ${longZh.length}-char Chinese run  : ${mbps(Buffer.byteLength(longZh), time(() => tok.encode(longZh), 1000))}`);

const ids = lines.map((s) => tok.encode(s));
console.log(`decode (text produced)              : ${mbps(bytesOf(lines), time(() => { for (const x of ids) tok.decode(x); }, 1500))}`);

// Baseline: merge loops only, same segments, no cache.
const bpe = new SentencePieceBpe(parseSentencePieceModel(fs.readFileSync(modelPath), modelPath));
const scoreOf = (p: string) => {
  const id = bpe.lookup(p);
  if (id === undefined) return undefined;
  const t = bpe.pieceType(id);
  return t === PieceType.NORMAL || t === PieceType.USER_DEFINED || t === PieceType.UNUSED ? bpe.pieceScore(id) : undefined;
};
const segs = unseen.slice(0, 2000).flatMap((s) => bpe.normalize(s).split(/(?<=[^\u2581])(?=\u2581)/)).filter((s) => s);
const segBytes = bytesOf(segs);
const tSlow = time(() => { for (const s of segs) mergeSegmentSlow(s, scoreOf); }, 1000);
const tFast = time(() => { for (const s of segs) bpe.mergeSegment(s); }, 1000);
console.log(`baseline on ${segs.length} segments (${(segBytes / 1e3).toFixed(0)} kB): slow-oracle merge ${mbps(segBytes, tSlow)}, heap merge ${mbps(segBytes, tFast)}`);
