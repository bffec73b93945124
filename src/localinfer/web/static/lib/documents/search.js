// Hybrid retrieval over the page's chunks, as the Python index does (rag/search.py):
// nearest vectors (exact cosine: at tens of thousands of chunks a flat scan is fast
// enough) and a small BM25 over text + heading, fused by reciprocal rank
// (1 / (60 + rank), each list contributing its top max(k, 5)).

export const RRF_K = 60;
export const RANK_WINDOW = 5;
const K1 = 1.2;
const B = 0.75;

// Words that match nearly every chunk (the same list as Python's).
export const STOPWORDS = new Set(('a an and are as at be but by can could did do does for from '
  + 'had has have how i if in into is it its me my no not of on or our should so than that the '
  + 'their them then there these they this to was we were what when where which who why will '
  + 'with would you your').split(' '));

const WORD = /[\p{L}\p{N}_]+/gu;

/** @param {string} text @returns {string[]} lower-cased words (Python's \w+) */
export function words(text) { return text.toLowerCase().match(WORD) ?? []; }

/** Query words for the keyword list: content words, else all words (as fts_query).
 * @param {string} text @returns {string[]} */
export function queryWords(text) {
  const all = words(text);
  const content = all.filter((w) => !STOPWORDS.has(w));
  return [...new Set(content.length ? content : all)];
}

/**
 * @param {number[][]} rankings lists of ids, best first
 * @returns {Map<number, number>} id -> fused score
 */
export function reciprocalRankFusion(rankings) {
  /** @type {Map<number, number>} */
  const fused = new Map();
  for (const ranking of rankings) {
    ranking.forEach((id, i) => fused.set(id, (fused.get(id) ?? 0) + 1 / (RRF_K + i + 1)));
  }
  return fused;
}

/** A searchable snapshot of one collection's chunks: vectors in one matrix, BM25 stats. */
export class SearchIndex {
  /** @param {import('./store.js').ChunkRow[]} rows @param {number} dim */
  constructor(rows, dim) {
    this.rows = rows;
    this.dim = dim;
    this.matrix = new Float32Array(rows.length * dim);
    rows.forEach((r, i) => this.matrix.set(new Float32Array(r.vector), i * dim));
    /** @type {Map<string, Map<number, number>>} word -> row -> term frequency */
    this.postings = new Map();
    this.lengths = new Float32Array(rows.length);
    rows.forEach((r, i) => {
      const ws = words(`${r.text} ${r.heading}`);
      this.lengths[i] = ws.length;
      for (const w of ws) {
        let p = this.postings.get(w);
        if (!p) { p = new Map(); this.postings.set(w, p); }
        p.set(i, (p.get(i) ?? 0) + 1);
      }
    });
    this.avgLength = rows.length ? this.lengths.reduce((a, b) => a + b, 0) / rows.length : 0;
  }

  /** @param {Float32Array} query @param {number} k @returns {[number, number][]} (row, cosine) */
  nearest(query, k) {
    const n = this.rows.length;
    const dim = this.dim;
    const sims = new Float32Array(n);
    for (let i = 0; i < n; i += 1) {
      let s = 0;
      const off = i * dim;
      for (let j = 0; j < dim; j += 1) s += this.matrix[off + j] * query[j];
      sims[i] = s;
    }
    return topK(sims, k);
  }

  /** @param {string} text @param {number} k @returns {number[]} rows, best BM25 first */
  keywords(text, k) {
    const n = this.rows.length;
    /** @type {Map<number, number>} */
    const scores = new Map();
    for (const w of queryWords(text)) {
      const p = this.postings.get(w);
      if (!p) continue;
      const idf = Math.log(1 + (n - p.size + 0.5) / (p.size + 0.5));
      for (const [row, tf] of p) {
        const norm = tf + K1 * (1 - B + B * this.lengths[row] / (this.avgLength || 1));
        scores.set(row, (scores.get(row) ?? 0) + idf * (tf * (K1 + 1)) / norm);
      }
    }
    return [...scores].sort((a, b) => b[1] - a[1] || a[0] - b[0]).slice(0, k).map(([r]) => r);
  }

  /**
   * @param {string} text
   * @param {Float32Array} query its unit vector
   * @param {number} k
   * @returns {{row: number, score: number, similarity: number | null}[]}
   */
  search(text, query, k) {
    const pool = Math.max(k, RANK_WINDOW);
    const near = this.nearest(query, pool);
    const fused = reciprocalRankFusion([near.map(([r]) => r), this.keywords(text, pool)]);
    const sims = new Map(near);
    return [...fused].sort((a, b) => b[1] - a[1]).slice(0, k)
      .map(([row, score]) => ({ row, score, similarity: sims.get(row) ?? null }));
  }
}

/** @param {Float32Array} values @param {number} k @returns {[number, number][]} */
function topK(values, k) {
  /** @type {[number, number][]} */
  const best = [];
  for (let i = 0; i < values.length; i += 1) {
    const v = values[i];
    if (best.length === k && v <= best[k - 1][1]) continue;
    let at = best.length;
    while (at > 0 && best[at - 1][1] < v) at -= 1;
    best.splice(at, 0, [i, v]);
    if (best.length > k) best.pop();
  }
  return best;
}
