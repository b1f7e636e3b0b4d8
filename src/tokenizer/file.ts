// Reading a `tokenizer.model` file (Node); the tokenizer itself is in tokenizer.ts.
import { MiB, readRegularFile } from '../files.ts';
import { MiniCPMTokenizer, TokenizerError, type TokenizerOptions } from './tokenizer.ts';

/** The real tokenizer.model is 1.9 MB; SentencePiece models of the largest vocabularies stay far below this. */
export const MAX_TOKENIZER_MODEL_BYTES = 256 * MiB;

/** Loads `tokenizer.model`; a missing, unreadable, special or corrupt file gives a TokenizerError naming it. */
export function loadTokenizerFile(path: string, opts: TokenizerOptions = {}): MiniCPMTokenizer {
  const bytes = readRegularFile(path, `tokenizer model ${path}`, MAX_TOKENIZER_MODEL_BYTES, (m) => new TokenizerError(m));
  return MiniCPMTokenizer.fromBytes(bytes, path, opts);
}
