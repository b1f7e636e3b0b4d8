// Opening the files a user names (configs, tokenizer models, conversations, text to tokenize, checkpoints):
// regular files only, and no larger than what they could sensibly hold. `/dev/zero` or `/dev/urandom` would
// otherwise be read until memory runs out, and a named pipe would block the command forever; they are
// refused at once with one line. Node-only (the model code reads no files).
import fs from 'node:fs';
import type { UserError } from './errors.ts';

/** Builds the error to throw from a one-line reason (the caller's UserError subclass, naming the file). */
export type Fail = (message: string) => UserError;

function kind(st: fs.Stats | fs.BigIntStats): string {
  if (st.isDirectory()) return 'a directory';
  if (st.isFIFO()) return 'a named pipe';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isSocket()) return 'a socket';
  return 'not a regular file';
}

export const MiB = 2 ** 20;
const size = (n: number) => (n >= MiB ? `${(n / MiB).toFixed(n % MiB ? 1 : 0)} MiB` : `${n} bytes`);

/**
 * Open `path` for reading if it is a regular file. The open does not block on a named pipe (O_NONBLOCK,
 * which changes nothing for a regular file), and the check is made on the opened descriptor, so the file
 * read is the file checked. `label` starts every message ("--msgs file x.json", "config.json").
 */
export function openRegularFile(path: string, label: string, fail: Fail): { fd: number; bytes: number; id: string } {
  // Node would cut the path at the NUL and open another file.
  if (path.includes('\0')) throw fail(`${label}: a file path cannot contain a NUL byte`);
  let fd: number;
  try {
    fd = fs.openSync(path, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (!code) throw e; // not a file-system answer: a bug, reported as one
    throw fail(code === 'ENOENT' ? `${label} does not exist` : `${label} cannot be opened (${code})`);
  }
  const st = fs.fstatSync(fd, { bigint: true });
  if (!st.isFile()) {
    fs.closeSync(fd);
    throw fail(`${label} is ${kind(st)}, not a regular file`);
  }
  // `id` ("device:inode") lets a later reader of the descriptor check it still has this file.
  return { fd, bytes: Number(st.size), id: `${st.dev}:${st.ino}` };
}

/** The whole of a regular file of at most `maxBytes` bytes. */
export function readRegularFile(path: string, label: string, maxBytes: number, fail: Fail): Buffer {
  const { fd, bytes } = openRegularFile(path, label, fail);
  try {
    if (bytes > maxBytes) throw fail(`${label} is ${size(bytes)}, more than the ${size(maxBytes)} such a file may hold`);
    const buf = Buffer.alloc(bytes);
    let done = 0;
    while (done < bytes) {
      const n = fs.readSync(fd, buf, done, bytes - done, done);
      if (n <= 0) break; // the file shrank while being read: keep what is there
      done += n;
    }
    return done === bytes ? buf : buf.subarray(0, done);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code) throw fail(`${label} cannot be read (${(e as NodeJS.ErrnoException).code})`);
    throw e;
  } finally {
    fs.closeSync(fd);
  }
}

/** A regular file as UTF-8 text (invalid bytes become U+FFFD, as readFileSync(path, 'utf8') does). */
export function readRegularText(path: string, label: string, maxBytes: number, fail: Fail): string {
  return readRegularFile(path, label, maxBytes, fail).toString('utf8');
}

/**
 * Call `onLine(text, lineNumber)` for each line of a regular file (UTF-8, '\n'-separated, a trailing '\r'
 * kept), reading it in pieces so a file of any size takes bounded memory; a single line longer than
 * `maxLineBytes` is refused. `onLine` returning false stops the reading.
 */
export function forEachLine(path: string, label: string, maxLineBytes: number, fail: Fail,
  onLine: (line: string, lineNumber: number) => boolean | void): void {
  const { fd } = openRegularFile(path, label, fail);
  try {
    const decoder = new TextDecoder('utf-8');
    const chunk = Buffer.alloc(Math.min(maxLineBytes, MiB));
    let pending = '';
    let lineNumber = 0;
    let position = 0;
    for (;;) {
      let n: number;
      try {
        n = fs.readSync(fd, chunk, 0, chunk.byteLength, position);
      } catch (e) {
        if (!(e as NodeJS.ErrnoException).code) throw e;
        throw fail(`${label} cannot be read (${(e as NodeJS.ErrnoException).code})`);
      }
      position += n;
      pending += n > 0 ? decoder.decode(chunk.subarray(0, n), { stream: true }) : decoder.decode();
      let from = 0;
      for (let nl = pending.indexOf('\n'); nl >= 0; nl = pending.indexOf('\n', from)) {
        if (onLine(pending.slice(from, nl), ++lineNumber) === false) return;
        from = nl + 1;
      }
      pending = pending.slice(from);
      if (Buffer.byteLength(pending) > maxLineBytes) {
        throw fail(`${label}: line ${lineNumber + 1} is longer than ${size(maxLineBytes)}`);
      }
      if (n <= 0) break;
    }
    if (pending !== '') onLine(pending, ++lineNumber);
  } finally {
    fs.closeSync(fd);
  }
}
