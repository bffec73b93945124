// A small Markdown renderer for model answers. It never parses HTML: every element is made
// with createElement and every piece of the model's text goes in through text nodes
// (textContent), so `<script>`, `<img onerror=…>` or any other markup a model writes is
// shown as the characters it is. Links are kept only when their URL parses as absolute
// http(s); any other scheme (javascript:, data:, vbscript:, file:, …) or a relative URL
// leaves the link's text as plain text. What it renders: ATX headings, paragraphs (a single
// newline is a line break), bullet and numbered lists (nested by indentation), fenced code
// blocks (``` or ~~~; an unclosed fence runs to the end, as while an answer streams),
// block quotes, rules, inline code, **strong**, *emphasis*, ~~strike~~, [links](https://…),
// <https://…> and bare https:// URLs. Tables and inline HTML stay text.

const MAX_DEPTH = 8; // nested quotes/lists deeper than this are shown as text
const MAX_CHARS = 200_000; // longer answers are shown as plain text (no quadratic scans)

const FENCE = /^ {0,3}(`{3,}|~{3,})[ \t]*([^`\s]*)[^`]*$/;
const HEADING = /^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$/;
const RULE = /^ {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$/;
const QUOTE = /^ {0,3}> ?(.*)$/;
const ITEM = /^( {0,3})([-*+]|\d{1,9}[.)])(?:[ \t]+(.*)|[ \t]*$)/;

/**
 * The URL when it is an absolute http(s) URL, else null.
 * @param {string} href
 * @returns {string | null}
 */
export function safeHref(href) {
  let url;
  try {
    url = new URL(href);
  } catch {
    return null;
  }
  return url.protocol === 'http:' || url.protocol === 'https:' ? url.href : null;
}

/**
 * Render Markdown into a fragment of DOM nodes (text nodes and a fixed set of elements).
 * @param {string} text
 * @param {Document} [doc]
 * @returns {DocumentFragment}
 */
export function renderMarkdown(text, doc = document) {
  const out = doc.createDocumentFragment();
  const source = String(text ?? '').replace(/\r\n?/g, '\n');
  if (source.length > MAX_CHARS) {
    const pre = doc.createElement('pre');
    pre.textContent = source;
    out.append(pre);
    return out;
  }
  blocks(source.split('\n'), out, doc, 0);
  return out;
}

/**
 * @param {string} tag
 * @param {Document} doc
 * @param {string} [text]
 * @returns {HTMLElement}
 */
function make(tag, doc, text) {
  const node = doc.createElement(tag);
  if (text !== undefined) node.textContent = text;
  return node;
}

/** @param {string} line @returns {boolean} */
function blank(line) { return line.trim() === ''; }

/** @param {string} line @returns {boolean} a line that starts a block other than a paragraph */
function startsBlock(line) {
  return FENCE.test(line) || HEADING.test(line) || RULE.test(line) || QUOTE.test(line)
    || ITEM.test(line);
}

/** @param {string} line @returns {number} */
function indentOf(line) { return line.length - line.trimStart().length; }

/**
 * @param {string[]} lines
 * @param {Node} parent
 * @param {Document} doc
 * @param {number} depth
 */
function blocks(lines, parent, doc, depth) {
  if (depth > MAX_DEPTH) {
    parent.appendChild(make('p', doc, lines.join('\n')));
    return;
  }
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    if (blank(line)) { i += 1; continue; }
    const fence = FENCE.exec(line);
    if (fence) {
      const mark = fence[1];
      const body = [];
      i += 1;
      while (i < lines.length) {
        const close = lines[i].trim();
        if (close.startsWith(mark[0].repeat(mark.length)) && /^([`~])\1*$/.test(close)
          && close[0] === mark[0]) { i += 1; break; }
        body.push(lines[i]);
        i += 1;
      }
      const pre = make('pre', doc);
      const code = make('code', doc, body.join('\n'));
      if (fence[2]) code.dataset.lang = fence[2].slice(0, 40);
      pre.append(code);
      parent.appendChild(pre);
      continue;
    }
    const heading = HEADING.exec(line);
    if (heading) {
      const h = make(`h${heading[1].length}`, doc);
      inline(heading[2] ?? '', h, doc, true);
      parent.appendChild(h);
      i += 1;
      continue;
    }
    if (RULE.test(line)) {
      parent.appendChild(make('hr', doc));
      i += 1;
      continue;
    }
    if (QUOTE.test(line)) {
      const inner = [];
      while (i < lines.length && !blank(lines[i])) {
        const q = QUOTE.exec(lines[i]);
        inner.push(q ? q[1] : lines[i]);
        i += 1;
      }
      const quote = make('blockquote', doc);
      blocks(inner, quote, doc, depth + 1);
      parent.appendChild(quote);
      continue;
    }
    const item = ITEM.exec(line);
    if (item) {
      i = list(lines, i, parent, doc, depth);
      continue;
    }
    const para = [];
    while (i < lines.length && !blank(lines[i]) && (para.length === 0 || !startsBlock(lines[i]))) {
      para.push(lines[i].trim());
      i += 1;
    }
    const p = make('p', doc);
    inline(para.join('\n'), p, doc, true);
    parent.appendChild(p);
  }
}

/**
 * A list starting at lines[start]; returns the index after it.
 * @param {string[]} lines
 * @param {number} start
 * @param {Node} parent
 * @param {Document} doc
 * @param {number} depth
 * @returns {number}
 */
function list(lines, start, parent, doc, depth) {
  const first = /** @type {RegExpExecArray} */ (ITEM.exec(lines[start]));
  const ordered = /\d/.test(first[2]);
  const kind = (/** @type {string} */ m) => (/\d/.test(m) ? m.slice(-1) : m);
  const listEl = /** @type {HTMLOListElement | HTMLUListElement} */ (make(ordered ? 'ol' : 'ul', doc));
  if (ordered && parseInt(first[2], 10) !== 1) {
    /** @type {HTMLOListElement} */ (listEl).start = parseInt(first[2], 10);
  }
  let i = start;
  let loose = false;
  /** @type {string[][]} */
  const items = [];
  while (i < lines.length) {
    const m = ITEM.exec(lines[i]);
    if (!m || kind(m[2]) !== kind(first[2]) || m[1].length > first[1].length + 1) break;
    const width = m[1].length + m[2].length + 1;
    const content = [m[3] ?? ''];
    i += 1;
    while (i < lines.length) {
      const next = lines[i];
      if (blank(next)) {
        // A blank line continues the item when the next text is indented under it.
        let j = i;
        while (j < lines.length && blank(lines[j])) j += 1;
        if (j < lines.length && indentOf(lines[j]) >= Math.min(width, 4) ) {
          for (; i < j; i += 1) content.push('');
          loose = true;
          continue;
        }
        if (j < lines.length && ITEM.exec(lines[j]) && indentOf(lines[j]) <= first[1].length + 1) loose = true;
        break;
      }
      if (indentOf(next) >= Math.min(width, 4) && indentOf(next) > first[1].length) {
        content.push(next.slice(Math.min(indentOf(next), width)));
      } else if (!startsBlock(next)) {
        content.push(next.trim()); // a lazy continuation of the item's paragraph
      } else {
        break;
      }
      i += 1;
    }
    items.push(content);
    while (i < lines.length && blank(lines[i])) {
      let j = i;
      while (j < lines.length && blank(lines[j])) j += 1;
      const again = j < lines.length ? ITEM.exec(lines[j]) : null;
      if (again && kind(again[2]) === kind(first[2]) && again[1].length <= first[1].length + 1) {
        i = j;
      }
      break;
    }
  }
  for (const content of items) {
    const li = make('li', doc);
    const frag = doc.createDocumentFragment();
    blocks(content, frag, doc, depth + 1);
    // A tight item's single paragraph is unwrapped: its text sits in the <li> itself.
    if (!loose && frag.firstChild instanceof HTMLParagraphElement) {
      const para = frag.firstChild;
      while (para.firstChild) li.append(para.firstChild);
      para.remove();
    }
    li.append(frag);
    listEl.append(li);
  }
  parent.appendChild(listEl);
  return i;
}

/**
 * Inline Markdown into text nodes and a few elements.
 * @param {string} text
 * @param {Node} parent
 * @param {Document} doc
 * @param {boolean} links whether links may be made here (not inside a link's own text)
 * @param {number} [depth]
 */
function inline(text, parent, doc, links, depth = 0) {
  let plain = '';
  const flush = () => {
    if (!plain) return;
    const parts = plain.split('\n');
    parts.forEach((part, n) => {
      if (n > 0) parent.appendChild(make('br', doc));
      if (part) parent.appendChild(doc.createTextNode(part));
    });
    plain = '';
  };
  let i = 0;
  while (i < text.length) {
    const c = text[i];
    if (c === '\\' && i + 1 < text.length && /[!-/:-@[-`{-~]/.test(text[i + 1])) {
      plain += text[i + 1];
      i += 2;
      continue;
    }
    if (c === '`') {
      let run = 1;
      while (text[i + run] === '`') run += 1;
      const ticks = '`'.repeat(run);
      let end = text.indexOf(ticks, i + run);
      while (end !== -1 && text[end + run] === '`') end = text.indexOf(ticks, end + run + 1);
      if (end !== -1) {
        flush();
        let code = text.slice(i + run, end).replace(/\n/g, ' ');
        if (code.length > 2 && code.startsWith(' ') && code.endsWith(' ')) code = code.slice(1, -1);
        parent.appendChild(make('code', doc, code));
        i = end + run;
        continue;
      }
      plain += ticks;
      i += run;
      continue;
    }
    if (depth < MAX_DEPTH && (c === '*' || c === '_' || c === '~')) {
      const double = text[i + 1] === c;
      if (c === '~' && !double) { plain += c; i += 1; continue; }
      // `_` only at a word's edge (snake_case stays as it is).
      const before = i > 0 ? text[i - 1] : ' ';
      if (c === '_' && /[\p{L}\p{N}]/u.test(before)) { plain += c; i += 1; continue; }
      const mark = double ? c + c : c;
      const from = i + mark.length;
      let end = -1;
      if (text[from] !== undefined && !/\s/.test(text[from])) {
        let at = text.indexOf(mark, from + 1);
        while (at !== -1) {
          const single = !double && text[at + 1] === c; // `*` must not close on `**`
          const after = text[at + mark.length];
          if (!/\s/.test(text[at - 1]) && !single
            && !(c === '_' && after !== undefined && /[\p{L}\p{N}]/u.test(after))) { end = at; break; }
          at = text.indexOf(mark, at + (single ? 2 : 1));
        }
      }
      if (end !== -1) {
        flush();
        const tag = c === '~' ? 'del' : double ? 'strong' : 'em';
        const node = make(tag, doc);
        inline(text.slice(from, end), node, doc, links, depth + 1);
        parent.appendChild(node);
        i = end + mark.length;
        continue;
      }
      plain += mark;
      i += mark.length;
      continue;
    }
    if (c === '[' && links) {
      const link = linkAt(text, i);
      if (link) {
        flush();
        const href = safeHref(link.url);
        if (href) {
          const a = /** @type {HTMLAnchorElement} */ (make('a', doc));
          a.href = href;
          a.rel = 'noopener noreferrer nofollow';
          a.target = '_blank';
          inline(link.label, a, doc, false, depth + 1);
          parent.appendChild(a);
        } else {
          const span = make('span', doc);
          span.className = 'unsafe-link';
          span.title = 'not a link: only http(s) links are followed';
          inline(link.label, span, doc, false, depth + 1);
          parent.appendChild(span);
        }
        i = link.end;
        continue;
      }
    }
    if (c === '<' && links) {
      const auto = /^<(https?:\/\/[^\s<>]+)>/i.exec(text.slice(i, i + 2048));
      const href = auto ? safeHref(auto[1]) : null;
      if (auto && href) {
        flush();
        appendLink(parent, doc, href, auto[1]);
        i += auto[0].length;
        continue;
      }
    }
    if ((c === 'h' || c === 'H') && links && !/[\p{L}\p{N}]/u.test(text[i - 1] ?? ' ')) {
      const bare = /^https?:\/\/[^\s<>()[\]"'`]+/i.exec(text.slice(i, i + 2048));
      if (bare) {
        const url = bare[0].replace(/[.,;:!?*_~]+$/, '');
        const href = safeHref(url);
        if (href) {
          flush();
          appendLink(parent, doc, href, url);
          i += url.length;
          continue;
        }
      }
    }
    plain += c;
    i += 1;
  }
  flush();
}

/**
 * @param {Node} parent @param {Document} doc @param {string} href @param {string} text
 */
function appendLink(parent, doc, href, text) {
  const a = /** @type {HTMLAnchorElement} */ (make('a', doc, text));
  a.href = href;
  a.rel = 'noopener noreferrer nofollow';
  a.target = '_blank';
  parent.appendChild(a);
}

/**
 * `[label](url "title")` at text[start], or null.
 * @param {string} text
 * @param {number} start
 * @returns {{label: string, url: string, end: number} | null}
 */
function linkAt(text, start) {
  let depth = 0;
  let close = -1;
  for (let j = start; j < text.length && j < start + 1000; j += 1) {
    if (text[j] === '\\') { j += 1; continue; }
    if (text[j] === '[') depth += 1;
    else if (text[j] === ']') {
      depth -= 1;
      if (depth === 0) { close = j; break; }
    }
  }
  if (close === -1 || text[close + 1] !== '(') return null;
  const rest = /^\(\s*<?([^\s<>()]*(?:\([^\s<>()]*\)[^\s<>()]*)*)>?(?:\s+(?:"[^"]*"|'[^']*'))?\s*\)/
    .exec(text.slice(close + 1, close + 2049));
  if (!rest) return null;
  return { label: text.slice(start + 1, close), url: rest[1], end: close + 1 + rest[0].length };
}
