// Blocks to chunks, ported line for line from the Python index (rag/blocks.py and
// rag/chunking.py) so a passage cites the same lines in the page as in `localinfer ask`:
// sections never mix, paragraphs stay whole when they fit, each chunk starts with the
// tail of the one before it. Sizes are in characters (UTF-16 code units here, code
// points in Python: the same for text without astral characters).

export const MAX_CHARS = 800;
export const OVERLAP_CHARS = 120;

/**
 * One paragraph (or heading) of a document, 1-based source lines.
 * @typedef {object} Block
 * @property {string} text
 * @property {number | null} start_line
 * @property {number | null} end_line
 * @property {number} section
 * @property {string} heading
 * @property {boolean} is_heading
 *
 * @typedef {object} Chunk
 * @property {string} text
 * @property {string} heading
 * @property {number | null} start_line
 * @property {number | null} end_line
 *
 * @typedef {{text: string, first: number | null, last: number | null, para_start: boolean}} Unit
 */

/** @param {Partial<Block> & {text: string}} b @returns {Block} */
export function block(b) {
  return { start_line: null, end_line: null, section: 0, heading: '', is_heading: false, ...b };
}

/** Python's str.splitlines() for the separators text files use.
 * @param {string} text @returns {string[]} */
export function splitLines(text) {
  const lines = text.split(/\r\n|[\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029]/);
  if (lines.length && lines[lines.length - 1] === '') lines.pop();
  return lines;
}

/** Python's str.strip() / isspace() notion of blank. @param {string} s */
export function isBlank(s) { return s.trim() === ''; }

/** @param {string} s @returns {string} */
function rstrip(s) { return s.replace(/\s+$/u, ''); }
/** @param {string} s @returns {string} */
function lstrip(s) { return s.replace(/^\s+/u, ''); }

/**
 * Runs of non-blank lines as blocks (blocks.paragraphs).
 * @param {string[]} lines
 * @param {number} [firstLine]
 * @param {{section?: number, heading?: string}} [opts]
 * @returns {Block[]}
 */
export function paragraphs(lines, firstLine = 1, opts = {}) {
  /** @type {Block[]} */
  const blocks = [];
  /** @type {string[]} */
  let run = [];
  let start = firstLine;
  const all = [...lines, ''];
  for (let offset = 0; offset < all.length; offset += 1) {
    const line = all[offset];
    if (!isBlank(line)) {
      if (!run.length) start = firstLine + offset;
      run.push(rstrip(line));
      continue;
    }
    if (run.length) {
      blocks.push(block({ text: run.join('\n'), start_line: start,
        end_line: start + run.length - 1, section: opts.section ?? 0, heading: opts.heading ?? '' }));
      run = [];
    }
  }
  return blocks;
}

/** The stack of headings in force, by level (blocks.HeadingPath). */
export class HeadingPath {
  constructor() {
    /** @type {[number, string][]} */
    this.stack = [];
    this.section = 0;
  }

  /** @param {number} level @param {string} title @returns {string} */
  push(level, title) {
    while (this.stack.length && this.stack[this.stack.length - 1][0] >= level) this.stack.pop();
    this.stack.push([level, title.trim()]);
    this.section += 1;
    return this.path;
  }

  get path() { return this.stack.map(([, t]) => t).filter(Boolean).join(' > '); }
}

const SENTENCE_END = /(?<=[.!?;:])\s+/gu;

/** End offsets of sentence-ending whitespace runs in `text`. @param {string} text */
function sentenceEnds(text) {
  return [...text.matchAll(SENTENCE_END)].map((m) => /** @type {number} */ (m.index) + m[0].length);
}

/** A line longer than a chunk is cut at sentence ends, else at spaces, else hard.
 * @param {string} line @param {number} limit @returns {string[]} */
function splitLong(line, limit) {
  const out = [];
  while (line.length > limit) {
    const window = line.slice(0, limit);
    let cut = Math.max(0, ...sentenceEnds(window));
    if (cut < Math.floor(limit / 2)) cut = (window.lastIndexOf(' ') + 1) || limit;
    out.push(rstrip(line.slice(0, cut)));
    line = lstrip(line.slice(cut));
  }
  if (!isBlank(line)) out.push(line);
  return out;
}

/** @param {Block} b @param {number} maxChars @returns {Unit[]} */
function units(b, maxChars) {
  const lines = splitLines(b.text);
  const start = b.start_line;
  const end = b.end_line;
  // Lines map one to one unless the loader reflowed them (HTML collapses whitespace).
  const exact = start !== null && end !== null && end - start + 1 === lines.length;
  let first = true;
  /** @type {Unit[]} */
  const out = [];
  lines.forEach((line, offset) => {
    const lo = exact && start !== null ? start + offset : start;
    const hi = exact && start !== null ? start + offset : end;
    for (const piece of splitLong(line, maxChars)) {
      out.push({ text: piece, first: lo, last: hi, para_start: first });
      first = false;
    }
  });
  return out;
}

/** The last whole sentences (or words) of `text` within `limit` characters.
 * @param {string} text @param {number} limit */
function tail(text, limit) {
  if (text.length <= limit) return text;
  const window = text.slice(-limit);
  const starts = sentenceEnds(window);
  if (starts.length) return window.slice(starts[0]);
  const space = window.indexOf(' ');
  return space >= 0 ? window.slice(space + 1) : '';
}

/** @param {Unit[]} us @returns {string} */
function join(us) {
  /** @type {string[]} */
  const out = [];
  us.forEach((u, i) => {
    if (i && u.para_start) out.push('');
    out.push(u.text);
  });
  return out.join('\n');
}

class Packer {
  /** @param {number} maxChars @param {number} overlap */
  constructor(maxChars, overlap) {
    this.maxChars = maxChars;
    this.overlap = overlap;
    /** @type {Chunk[]} */
    this.chunks = [];
    /** @type {Unit[]} */
    this.units = [];
    this.fresh = 0;
    this.heading = '';
  }

  /** @param {Unit[]} extra */
  size(extra) { return join([...this.units, ...extra]).length; }

  /** @param {Unit[][]} paras @param {string} heading */
  section(paras, heading) {
    this.heading = heading;
    for (const para of paras) {
      if (this.fresh && this.size(para) > this.maxChars) this.emit(true);
      if (this.size(para) <= this.maxChars) { this.add(para); continue; }
      for (const unit of para) {
        if (this.fresh && this.size([unit]) > this.maxChars) this.emit(true);
        this.add([unit]);
      }
    }
    this.emit(false);
  }

  /** @param {Unit[]} us */
  add(us) { this.units.push(...us); this.fresh += us.length; }

  /** @param {boolean} keepOverlap */
  emit(keepOverlap) {
    const us = this.units;
    if (this.fresh) {
      const firsts = us.map((u) => u.first).filter((v) => v !== null);
      const lasts = us.map((u) => u.last).filter((v) => v !== null);
      this.chunks.push({ text: join(us), heading: this.heading,
        start_line: firsts.length ? Math.min(.../** @type {number[]} */ (firsts)) : null,
        end_line: lasts.length ? Math.max(.../** @type {number[]} */ (lasts)) : null });
    }
    this.units = keepOverlap ? this.overlapOf(us) : [];
    this.fresh = 0;
  }

  /** @param {Unit[]} us @returns {Unit[]} */
  overlapOf(us) {
    /** @type {Unit[]} */
    const kept = [];
    let budget = this.overlap;
    for (let i = us.length - 1; i >= 0; i -= 1) {
      const u = us[i];
      if (u.text.length + 1 > budget) {
        const t = tail(u.text, budget);
        if (t) kept.unshift({ text: t, first: u.first, last: u.last, para_start: false });
        break;
      }
      kept.unshift(u);
      budget -= u.text.length + 1;
    }
    // Overlap continues the previous paragraph: no blank line before it.
    return kept.map((u, i) => (i === 0 ? { ...u, para_start: false } : u));
  }
}

/**
 * @param {Block[]} blocks
 * @param {{maxChars?: number, overlap?: number}} [opts]
 * @returns {Chunk[]}
 */
export function chunkBlocks(blocks, opts = {}) {
  const maxChars = opts.maxChars ?? MAX_CHARS;
  const overlap = opts.overlap ?? OVERLAP_CHARS;
  const packer = new Packer(maxChars, overlap);
  /** @type {Unit[][]} heading-only sections wait for their content */
  let carried = [];
  let i = 0;
  while (i < blocks.length) {
    let j = i;
    while (j < blocks.length && blocks[j].section === blocks[i].section) j += 1;
    const section = blocks.slice(i, j);
    i = j;
    const paras = section.map((b) => units(b, Math.max(maxChars - overlap, 1)));
    if (section.every((b) => b.is_heading)) { carried.push(...paras); continue; }
    packer.section([...carried, ...paras], section[section.length - 1].heading);
    carried = [];
  }
  if (carried.length) packer.section(carried, '');
  return packer.chunks;
}

/** What is embedded: the heading path gives a chunk its context. @param {Chunk} c */
export function embedText(c) { return c.heading ? `${c.heading}\n${c.text}` : c.text; }
