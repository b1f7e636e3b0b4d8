// Reading a `tokenizer.model` file (Node); the tokenizer itself is in tokenizer.ts.
import { readFileSync } from 'node:fs';
import { MiniCPMTokenizer, TokenizerError, type TokenizerOptions } from './tokenizer.ts';

/** Loads `tokenizer.model`; a missing, unreadable or corrupt file gives a TokenizerError naming it. */
export function loadTokenizerFile(path: string, opts: TokenizerOptions = {}): MiniCPMTokenizer {
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new TokenizerError(`${path}: cannot read tokenizer model (${err.code ?? err.message})`);
  }
  return MiniCPMTokenizer.fromBytes(bytes, path, opts);
}
