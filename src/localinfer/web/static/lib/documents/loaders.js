// Text to blocks, ported from the Python loaders (rag/loaders.py) so line numbers agree:
// plain text splits at blank lines, Markdown also at headings (outside code fences),
// source code at top-level definitions. HTML is parsed with DOMParser into an inert
// document (scripts never run, nothing is inserted into the page) and only visible text
// is kept; its line numbers are found by locating each text run in the source. Which
// loader reads which file is a table. PDF is not supported in the page.
import { block, HeadingPath, isBlank, paragraphs, splitLines } from './chunking.js';
import { LocalInferError } from '../errors.js';

/** @typedef {import('./chunking.js').Block} Block */

/** A file the page cannot read as a document. */
export class DocumentError extends LocalInferError {
  /** @param {string} message */
  constructor(message) { super(message, 'bad_document'); }
}

/** @param {string} text @returns {Block[]} */
export function textBlocks(text) { return paragraphs(splitLines(text)); }

const ATX = /^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$/u;
const SETEXT = /^ {0,3}(=+|-+)\s*$/u;
const FENCE = /^ {0,3}(`{3,}|~{3,})/u;

/** @param {string} text @returns {Block[]} */
export function markdownBlocks(text) {
  const lines = splitLines(text);
  const path = new HeadingPath();
  /** @type {Block[]} */
  const blocks = [];
  /** @type {string[]} */
  let body = [];
  let bodyStart = 1;
  /** @type {string | null} */
  let fence = null;
  const flush = () => {
    blocks.push(...fencedParagraphs(body, bodyStart, path.section, path.path));
    body = [];
  };
  lines.forEach((line, index) => {
    const number = index + 1;
    const fenceMatch = FENCE.exec(line);
    if (fence !== null) {
      if (fenceMatch && fenceMatch[1][0] === fence[0] && fenceMatch[1].length >= fence.length) fence = null;
    } else if (fenceMatch) {
      fence = fenceMatch[1];
    } else {
      const atx = ATX.exec(line);
      if (atx) {
        flush();
        const heading = path.push(atx[1].length, atx[2]);
        blocks.push(block({ text: line.trim(), start_line: number, end_line: number,
          section: path.section, heading, is_heading: true }));
        bodyStart = number + 1;
        return;
      }
      if (SETEXT.test(line) && body.length && !isBlank(body[body.length - 1])
          && (body.length === 1 || isBlank(body[body.length - 2]))) {
        const title = /** @type {string} */ (body.pop());
        flush();
        const heading = path.push(line.trim()[0] === '=' ? 1 : 2, title);
        blocks.push(block({ text: `${title.trim()}\n${line.trim()}`, start_line: number - 1,
          end_line: number, section: path.section, heading, is_heading: true }));
        bodyStart = number + 1;
        return;
      }
    }
    if (!body.length) bodyStart = number;
    body.push(line);
  });
  flush();
  return blocks;
}

/** Paragraphs, except that a fenced code block stays whole across its blank lines.
 * @param {string[]} lines @param {number} first @param {number} section @param {string} heading */
function fencedParagraphs(lines, first, section, heading) {
  /** @type {string[]} */
  const merged = [];
  /** @type {string | null} */
  let fence = null;
  for (const line of lines) {
    const m = FENCE.exec(line);
    if (fence === null && m) fence = m[1];
    else if (fence !== null && m && m[1][0] === fence[0]) fence = null;
    merged.push(fence !== null && isBlank(line) ? ' ' : line);
  }
  return paragraphs(merged, first, { section, heading });
}

// A definition at column 0 starts a new section of a source file.
const DEFINITION = new RegExp(
  '^(?:export\\s+|pub(?:\\([a-z]+\\))?\\s+|public\\s+|private\\s+|protected\\s+|static\\s+|async\\s+)*'
  + '(?:def|class|function|func|fn|struct|enum|trait|impl|interface|type|module|'
  + 'sub|proc|object)\\b', 'u');

/** @param {string} text @returns {Block[]} */
export function codeBlocks(text) {
  /** @type {Block[]} */
  const out = [];
  let section = 0;
  let heading = '';
  for (const b of paragraphs(splitLines(text))) {
    const starts = splitLines(b.text).find((ln) => DEFINITION.test(ln));
    if (starts !== undefined) {
      section += 1;
      heading = starts.trim().slice(0, 80);
    }
    out.push({ ...b, section, heading });
  }
  return out;
}

// Elements whose content a browser never shows as text (as rag/html_text.py).
const HIDDEN = new Set(['script', 'style', 'noscript', 'template', 'svg', 'math', 'head',
  'iframe', 'object', 'canvas', 'select', 'button']);
const BREAKS = new Set(['p', 'div', 'section', 'article', 'main', 'aside', 'header', 'footer',
  'nav', 'li', 'ul', 'ol', 'dl', 'dt', 'dd', 'table', 'tr', 'td', 'th', 'thead', 'tbody',
  'blockquote', 'pre', 'figure', 'figcaption', 'form', 'fieldset', 'br', 'hr', 'address',
  'details', 'summary', 'h1', 'h2', 'h3', 'h4', 'h5', 'h6', 'title', 'body', 'html']);
const HEADINGS = new Map([1, 2, 3, 4, 5, 6].map((n) => [`h${n}`, n]));

/** Line numbers of a source text, by offset. */
class LineMap {
  /** @param {string} source */
  constructor(source) {
    this.source = source.toLowerCase();
    /** @type {number[]} offsets where lines start */
    this.starts = [0];
    for (let i = 0; i < source.length; i += 1) {
      const c = source[i];
      if (c === '\n' || (c === '\r' && source[i + 1] !== '\n')) this.starts.push(i + 1);
    }
    this.cursor = 0;
  }

  /** @param {number} offset @returns {number} 1-based line */
  line(offset) {
    let lo = 0;
    let hi = this.starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.starts[mid] <= offset) lo = mid; else hi = mid - 1;
    }
    return lo + 1;
  }

  /** Where `word` next occurs from the cursor (moving it), or null.
   * @param {string} word @returns {number | null} */
  find(word) {
    const at = this.source.indexOf(word.toLowerCase(), this.cursor);
    if (at < 0) return null;
    this.cursor = at + word.length;
    return at;
  }

  /** Move the cursor past the next `<tag ...>` (elements come in source order), and for
   * a hidden element past its end tag too, so words in markup are never matched.
   * Elements the parser implied (no tag in the source) leave the cursor alone.
   * @param {string} tag @param {boolean} hidden */
  skipTag(tag, hidden) {
    const open = new RegExp(`<${tag}[\\s/>]`, 'g');
    open.lastIndex = this.cursor;
    const m = open.exec(this.source);
    if (!m) return;
    const close = this.source.indexOf('>', m.index);
    this.cursor = close < 0 ? this.source.length : close + 1;
    if (hidden) {
      const end = this.source.indexOf(`</${tag}`, this.cursor);
      if (end >= 0) this.cursor = end;
    }
  }
}

/** Words of a text run that can be found verbatim in the source (no entities).
 * @param {string} text @returns {string[]} */
function findable(text) {
  return text.split(/\s+/u).filter((w) => w && !/[&<>"']/.test(w));
}

/**
 * Visible text of an HTML page as blocks, with the source lines each came from.
 * @param {string} source
 * @returns {Block[]}
 */
export function htmlBlocks(source) {
  // DOMParser builds an inert document: no script runs, no resource loads, nothing is
  // attached to this page. Only text nodes are read from it.
  const doc = new DOMParser().parseFromString(source, 'text/html');
  const lines = new LineMap(source);
  // Text in <head> (the title) is never body text: look for words after it.
  const headEnd = lines.source.indexOf('</head');
  if (headEnd >= 0) lines.cursor = headEnd;
  const path = new HeadingPath();
  /** @type {Block[]} */
  const blocks = [];
  /** @type {string[]} */
  let parts = [];
  /** @type {number | null} */
  let start = null;
  let end = 0;
  /** @type {number | null} */
  let level = null;
  const flush = () => {
    const text = parts.join('').replace(/\s+/gu, ' ').trim();
    if (text && start !== null) {
      let heading = path.path;
      const isHeading = level !== null;
      if (isHeading) heading = path.push(level ?? 1, text);
      blocks.push(block({ text, start_line: start, end_line: Math.max(start, end),
        section: path.section, heading, is_heading: isHeading }));
    }
    level = null;
    parts = [];
    start = null;
  };
  /** @param {Node} node */
  const walk = (node) => {
    if (node.nodeType === Node.TEXT_NODE) {
      const data = node.textContent ?? '';
      if (isBlank(data)) return;
      const words = findable(data);
      const first = words.length ? lines.find(words[0]) : null;
      let last = first;
      for (const w of words.slice(1)) last = lines.find(w) ?? last;
      const firstLine = first === null ? lines.line(lines.cursor) : lines.line(first);
      if (start === null) start = firstLine;
      end = last === null ? firstLine : lines.line(last);
      parts.push(data);
      return;
    }
    if (node.nodeType !== Node.ELEMENT_NODE) return;
    const tag = /** @type {Element} */ (node).localName;
    const hidden = HIDDEN.has(tag) || tag === 'title';
    lines.skipTag(tag, hidden);
    if (hidden) return;
    if (BREAKS.has(tag)) flush();
    if (HEADINGS.has(tag)) level = HEADINGS.get(tag) ?? null;
    for (const child of node.childNodes) walk(child);
    if (BREAKS.has(tag)) flush();
  };
  if (doc.body) walk(doc.body);
  flush();
  const title = (doc.querySelector('title')?.textContent ?? '').replace(/\s+/gu, ' ').trim();
  if (!title) return blocks;
  // The page title names the page in every result, like a top-level heading.
  return blocks.map((b) => ({ ...b, heading: !b.heading ? title
    : b.heading.startsWith(title) ? b.heading : `${title} > ${b.heading}` }));
}

/** @typedef {{kind: string, load: (text: string) => Block[]}} Format */

/** @type {Format} */ const TEXT = { kind: 'text', load: textBlocks };
/** @type {Format} */ const MARKDOWN = { kind: 'markdown', load: markdownBlocks };
/** @type {Format} */ const HTML = { kind: 'html', load: htmlBlocks };
/** @type {Format} */ const CODE = { kind: 'code', load: codeBlocks };

/** @param {string[]} suffixes @param {Format} fmt @returns {[string, Format][]} */
const all = (suffixes, fmt) => suffixes.map((s) => [s, fmt]);

/** @type {Map<string, Format>} suffix -> loader, as in Python's FORMATS */
export const FORMATS = new Map([
  ...all(['.txt', '.text', '.rst', '.org', '.adoc', '.csv', '.tsv', '.log'], TEXT),
  ...all(['.md', '.markdown', '.mdx'], MARKDOWN),
  ...all(['.html', '.htm', '.xhtml'], HTML),
  ...all(['.py', '.pyi', '.js', '.mjs', '.cjs', '.ts', '.tsx', '.jsx', '.go', '.rs', '.c', '.h',
    '.cc', '.cpp', '.hpp', '.cxx', '.java', '.kt', '.scala', '.swift', '.rb', '.php', '.cs',
    '.lua', '.pl', '.r', '.jl', '.sh', '.bash', '.zsh', '.sql', '.toml', '.yaml', '.yml',
    '.ini', '.cfg', '.json', '.css', '.scss', '.vue', '.svelte', '.ex', '.exs', '.hs', '.ml',
    '.clj', '.el', '.vim', '.zig', '.nim', '.dart'], CODE),
]);

/** @param {string} name @returns {string} */
function suffix(name) {
  const dot = name.lastIndexOf('.');
  return dot > name.lastIndexOf('/') && dot > 0 ? name.slice(dot).toLowerCase() : '';
}

/**
 * Decode a file's bytes: UTF-8 (BOM dropped), else Latin-1, as Python's loader does.
 * @param {Uint8Array} bytes @returns {string}
 */
export function decode(bytes) {
  try {
    return new TextDecoder('utf-8', { fatal: true, ignoreBOM: false }).decode(bytes);
  } catch {
    return new TextDecoder('latin1').decode(bytes);
  }
}

/**
 * (kind, blocks) of one document. Unknown suffixes are read as plain text when they
 * look like text; PDF and binary content are refused with a reason.
 * @param {string} name
 * @param {string} text
 * @returns {{kind: string, blocks: Block[]}}
 */
export function loadDocument(name, text) {
  const ext = suffix(name);
  if (ext === '.pdf' || text.startsWith('%PDF-')) {
    throw new DocumentError(`${name}: PDF is not supported in the page (use \`localinfer index add\`, or the gateway)`);
  }
  if (text.slice(0, 8192).includes('\0')) throw new DocumentError(`${name}: binary content, not a document`);
  const fmt = FORMATS.get(ext) ?? TEXT;
  return { kind: fmt.kind, blocks: fmt.load(text) };
}
