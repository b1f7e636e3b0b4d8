// Data structures behind the BPE encoder (bpe.ts): the user-defined-symbol trie, the merge priority queue and
// reusable scratch buffers.

interface TrieNode { next: Map<number, TrieNode>; terminal: boolean }

/** Longest-match dictionary over UTF-16 code units (`normalizer::PrefixMatcher`). */
export class PrefixTrie {
  private readonly root: TrieNode = { next: new Map(), terminal: false };
  constructor(words: Iterable<string>) {
    for (const w of words) {
      let node = this.root;
      for (let i = 0; i < w.length; i++) {
        const c = w.charCodeAt(i);
        let child = node.next.get(c);
        if (!child) node.next.set(c, (child = { next: new Map(), terminal: false }));
        node = child;
      }
      node.terminal = true;
    }
  }
  /** Length (code units) of the longest word starting at `s[pos]`, or 0. */
  longest(s: string, pos: number): number {
    let node = this.root.next.get(s.charCodeAt(pos));
    let best = 0;
    for (let i = pos + 1; node; i++) {
      if (node.terminal) best = i - pos;
      if (i >= s.length) break;
      node = node.next.get(s.charCodeAt(i));
    }
    return best;
  }
}

/** Code units in the character at `s[i]` (2 for a surrogate pair). */
export function charLen(s: string, i: number): number {
  const c = s.charCodeAt(i);
  if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
    const d = s.charCodeAt(i + 1);
    if (d >= 0xdc00 && d <= 0xdfff) return 2;
  }
  return 1;
}

/** Max-heap of candidate merges ordered like bpe_model.cc's SymbolPairComparator. */
export class PairHeap {
  score: Float64Array; left: Int32Array; right: Int32Array; size: Int32Array; n = 0;
  constructor(cap: number) {
    this.score = new Float64Array(cap); this.left = new Int32Array(cap);
    this.right = new Int32Array(cap); this.size = new Int32Array(cap);
  }
  /** subtle: higher score first; on equal scores the smaller left index (leftmost pair) first. */
  private before(a: number, b: number): boolean {
    const sa = this.score[a], sb = this.score[b];
    return sa > sb || (sa === sb && this.left[a] < this.left[b]);
  }
  private swap(a: number, b: number): void {
    let t: number;
    t = this.score[a]; this.score[a] = this.score[b]; this.score[b] = t;
    t = this.left[a]; this.left[a] = this.left[b]; this.left[b] = t;
    t = this.right[a]; this.right[a] = this.right[b]; this.right[b] = t;
    t = this.size[a]; this.size[a] = this.size[b]; this.size[b] = t;
  }
  push(score: number, left: number, right: number, size: number): void {
    if (this.n === this.score.length) this.grow();
    let i = this.n++;
    this.score[i] = score; this.left[i] = left; this.right[i] = right; this.size[i] = size;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.before(i, p)) break;
      this.swap(i, p); i = p;
    }
  }
  /** Moves the top entry to slot `n` (just past the heap) and returns that slot. */
  pop(): number {
    const last = --this.n;
    this.swap(0, last);
    let i = 0;
    for (;;) {
      const l = 2 * i + 1, r = l + 1;
      let m = i;
      if (l < last && this.before(l, m)) m = l;
      if (r < last && this.before(r, m)) m = r;
      if (m === i) break;
      this.swap(i, m); i = m;
    }
    return last;
  }
  private grow(): void {
    const cap = this.score.length * 2 + 4;
    const s = new Float64Array(cap); s.set(this.score); this.score = s;
    const l = new Int32Array(cap); l.set(this.left); this.left = l;
    const r = new Int32Array(cap); r.set(this.right); this.right = r;
    const z = new Int32Array(cap); z.set(this.size); this.size = z;
  }
}

/** Reusable buffers for mergeSegment, grown on demand. */
export class Scratch {
  pos = new Int32Array(64); len = new Int32Array(64); prev = new Int32Array(64); next = new Int32Array(64);
  heap = new PairHeap(256);
  ensure(n: number): void {
    if (n <= this.pos.length) return;
    const cap = Math.max(n, this.pos.length * 2);
    this.pos = new Int32Array(cap); this.len = new Int32Array(cap);
    this.prev = new Int32Array(cap); this.next = new Int32Array(cap);
  }
}
