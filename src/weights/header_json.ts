// JSON as the reference implementation (huggingface/safetensors, Rust, serde_json) reads a safetensors
// header, where JSON.parse is too lax for the format:
//   - a key repeated in one object is an error (the format's README: "Duplicate keys are disallowed");
//     JSON.parse keeps the last value silently, so a repeated tensor name could swap a tensor's dtype;
//   - integers are kept apart from other numbers: `shape` and `data_offsets` are `usize` in Rust, so
//     `2.0` or `1e3` are not sizes there, while JSON.parse turns them into the integers 2 and 1000;
//   - a byte-order mark is not whitespace (the caller decodes with ignoreBOM so it reaches the parser).
// Objects come back as Maps (key order kept, no `__proto__` special case); numbers written with a fraction
// or an exponent come back as JsonFloat. Nesting is limited: a header needs three levels.

export class JsonFloat {
  constructor(readonly raw: string, readonly value: number) {}
  toJSON(): number {
    return this.value;
  }
}

export type JsonValue = null | boolean | string | number | JsonFloat | JsonValue[] | Map<string, JsonValue>;

export class HeaderJsonError extends Error {
  /** Keys from the root to the object holding a repeated key (duplicates only). */
  constructor(message: string, readonly duplicatePath?: string[]) {
    super(message);
  }
}

const MAX_DEPTH = 32;
/** A character for a message: printable ASCII as itself, anything else as U+XXXX (a BOM is invisible). */
const showChar = (c: string) => (c >= ' ' && c <= '~' ? JSON.stringify(c) : `U+${c.charCodeAt(0).toString(16).toUpperCase().padStart(4, '0')}`);
const WS = new Set([0x20, 0x09, 0x0a, 0x0d]);
const NUMBER = /-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?/y;
const ESCAPES: Record<string, string> = { '"': '"', '\\': '\\', '/': '/', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t' };

export function parseHeaderJson(text: string): JsonValue {
  let i = 0;
  const fail = (why: string): never => {
    throw new HeaderJsonError(`${why} at character ${i}`);
  };
  const skipWs = () => {
    while (i < text.length && WS.has(text.charCodeAt(i))) i++;
  };
  const expect = (c: string) => {
    if (text[i] !== c) fail(text[i] === undefined ? `expected "${c}", got the end` : `expected "${c}", got ${showChar(text[i])}`);
    i++;
  };

  function string(): string {
    expect('"');
    let out = '';
    let start = i;
    for (;;) {
      if (i >= text.length) fail('unterminated string');
      const c = text.charCodeAt(i);
      if (c === 0x22) break; // "
      if (c < 0x20) fail('control character in a string');
      if (c !== 0x5c) { // not a backslash
        i++;
        continue;
      }
      out += text.slice(start, i);
      const e = text[i + 1];
      i += 2;
      if (e !== undefined && Object.hasOwn(ESCAPES, e)) out += ESCAPES[e];
      else if (e === 'u') {
        const unit = hex4();
        if (unit >= 0xd800 && unit <= 0xdbff) {
          if (text[i] !== '\\' || text[i + 1] !== 'u') fail('lone leading surrogate in a \\u escape');
          i += 2;
          const low = hex4();
          if (low < 0xdc00 || low > 0xdfff) fail('invalid trailing surrogate in a \\u escape');
          out += String.fromCharCode(unit, low);
        } else if (unit >= 0xdc00 && unit <= 0xdfff) {
          fail('lone trailing surrogate in a \\u escape');
        } else out += String.fromCharCode(unit);
      } else fail(`invalid escape "\\${e ?? ''}"`);
      start = i;
    }
    out += text.slice(start, i);
    i++; // closing quote
    return out;
  }

  function hex4(): number {
    const h = text.slice(i, i + 4);
    if (!/^[0-9a-fA-F]{4}$/.test(h)) fail('invalid \\u escape');
    i += 4;
    return parseInt(h, 16);
  }

  function number(): number | JsonFloat {
    NUMBER.lastIndex = i;
    const m = NUMBER.exec(text);
    if (!m) return fail('invalid number');
    i += m[0].length;
    const value = Number(m[0]);
    return m[2] || m[3] ? new JsonFloat(m[0], value) : value;
  }

  function value(depth: number, path: string[]): JsonValue {
    if (depth > MAX_DEPTH) fail(`nesting deeper than ${MAX_DEPTH} levels`);
    skipWs();
    const c = text[i];
    if (c === '{') {
      i++;
      const obj = new Map<string, JsonValue>();
      skipWs();
      if (text[i] === '}') {
        i++;
        return obj;
      }
      for (;;) {
        skipWs();
        const key = string();
        if (obj.has(key)) {
          throw new HeaderJsonError(`duplicate key ${JSON.stringify(key)}`, path);
        }
        skipWs();
        expect(':');
        obj.set(key, value(depth + 1, [...path, key]));
        skipWs();
        if (text[i] === ',') {
          i++;
          continue;
        }
        expect('}');
        return obj;
      }
    }
    if (c === '[') {
      i++;
      const arr: JsonValue[] = [];
      skipWs();
      if (text[i] === ']') {
        i++;
        return arr;
      }
      for (;;) {
        arr.push(value(depth + 1, path));
        skipWs();
        if (text[i] === ',') {
          i++;
          continue;
        }
        expect(']');
        return arr;
      }
    }
    if (c === '"') return string();
    if (c === '-' || (c !== undefined && c >= '0' && c <= '9')) return number();
    for (const [word, v] of [['true', true], ['false', false], ['null', null]] as const) {
      if (text.startsWith(word, i)) {
        i += word.length;
        return v;
      }
    }
    return fail(c === undefined ? 'unexpected end of the header' : `unexpected ${showChar(c)}`);
  }

  const v = value(0, []);
  skipWs();
  if (i < text.length) fail(`unexpected ${showChar(text[i])} after the JSON value`);
  return v;
}
