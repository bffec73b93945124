// Answers from retrieved chunks with numbered citations, as the Python `ask` does
// (rag/ask.py): the same prompt, markers that point nowhere dropped. Every citation is
// then checked against the chunk it names: the quoted passage is a verbatim piece of
// that chunk, and the answer sentence must share enough content words with it to count
// as verified. With no local model to answer, the answer is extractive (sentences taken
// verbatim from the best chunks) and labelled so.
import { queryWords, words, STOPWORDS } from './search.js';

export const SYSTEM_PROMPT = 'You answer questions using only the numbered sources you are given. '
  + 'After each statement, cite the source it comes from with its number in square '
  + 'brackets, like [1]. If the sources do not contain the answer, say that you do not know.';
// Share of an answer sentence's content words that must occur in the cited passage.
export const VERIFY_OVERLAP = 0.5;
// Below this cosine an answer sentence is not attributed to any source (Python's value).
export const ATTRIBUTION_THRESHOLD = 0.45;
const MARKER = /\[(\d{1,3})\]/g;
const SENTENCE = /(?<=[.!?])\s+/u;

/**
 * @typedef {object} Source
 * @property {number} n
 * @property {string} name
 * @property {string} collection
 * @property {string} text
 * @property {string} heading
 * @property {number | null} start_line
 * @property {number | null} end_line
 * @property {string} location name:start-end
 * @property {number} score
 *
 * @typedef {object} Citation
 * @property {number} n source number
 * @property {string} sentence the answer sentence that cites it
 * @property {string} quote the passage of the source that supports it (verbatim)
 * @property {number} start offset of `quote` in the source's text
 * @property {boolean} verified quote is in the chunk and shares enough words with the sentence
 */

/** @param {string} q @param {Source[]} sources
 * @returns {import('../types.js').ChatMessage[]} */
export function buildMessages(q, sources) {
  const body = sources.map((s) => `[${s.n}] ${s.location}\n${s.text}`).join('\n\n');
  return [{ role: 'system', content: SYSTEM_PROMPT },
    { role: 'user', content: `Sources:\n\n${body}\n\nQuestion: ${q}` }];
}

/** Drop markers past the sources; the valid ones, in order.
 * @param {string} text @param {number} count @returns {[string, number[]]} */
export function cleanMarkers(text, count) {
  /** @type {number[]} */
  const cited = [];
  const out = text.replace(MARKER, (m, d) => {
    const n = Number(d);
    if (n >= 1 && n <= count) { if (!cited.includes(n)) cited.push(n); return m; }
    return '';
  });
  return [out, cited];
}

/** @param {string} text @returns {{text: string, start: number}[]} sentences with offsets */
function sentencesOf(text) {
  /** @type {{text: string, start: number}[]} */
  const out = [];
  const re = /[^.!?\n]+(?:[.!?]+|$)/gu;
  for (const m of text.matchAll(re)) {
    const t = m[0].trim();
    if (t) out.push({ text: t, start: /** @type {number} */ (m.index) + m[0].indexOf(t) });
  }
  return out;
}

/** @param {string} text @returns {Set<string>} */
function contentWords(text) {
  return new Set(words(text.replace(MARKER, ' ')).filter((w) => !STOPWORDS.has(w)));
}

/**
 * The passage of `source` best supporting `sentence`, and whether it verifiably does.
 * @param {string} sentence @param {Source} source @returns {Omit<Citation, 'n' | 'sentence'>}
 */
export function verify(sentence, source) {
  const wanted = contentWords(sentence);
  let best = { quote: '', start: -1, share: 0 };
  for (const s of sentencesOf(source.text)) {
    const have = contentWords(s.text);
    let hits = 0;
    for (const w of wanted) if (have.has(w)) hits += 1;
    const share = wanted.size ? hits / wanted.size : 0;
    if (share > best.share) best = { quote: s.text, start: s.start, share };
  }
  // The quote is checked against the stored chunk itself, not trusted from the search.
  const verbatim = best.start >= 0 && source.text.slice(best.start, best.start + best.quote.length) === best.quote;
  return { quote: best.quote, start: best.start, verified: verbatim && best.share >= VERIFY_OVERLAP };
}

/**
 * Citations of a model's answer: each sentence with markers, checked against its sources.
 * @param {string} answer @param {Source[]} sources @returns {Citation[]}
 */
export function citationsOf(answer, sources) {
  /** @type {Citation[]} */
  const out = [];
  for (const sentence of answer.split(SENTENCE)) {
    for (const m of sentence.matchAll(MARKER)) {
      const source = sources[Number(m[1]) - 1];
      if (source) out.push({ n: source.n, sentence: sentence.trim(), ...verify(sentence, source) });
    }
  }
  return out;
}

/**
 * An answer made only of source sentences: for each of the best sources, the sentence
 * sharing most words with the question.
 * @param {string} question @param {Source[]} sources @param {number} [max]
 * @returns {{answer: string, citations: Citation[]}}
 */
export function extractive(question, sources, max = 3) {
  const wanted = new Set(queryWords(question));
  /** @type {Citation[]} */
  const citations = [];
  for (const source of sources.slice(0, max)) {
    let best = { text: '', start: -1, hits: -1 };
    for (const s of sentencesOf(source.text)) {
      const hits = [...contentWords(s.text)].filter((w) => wanted.has(w)).length;
      if (hits > best.hits) best = { ...s, hits };
    }
    // A source after the first one is quoted only if it shares a word with the question.
    if (best.start < 0 || (best.hits === 0 && citations.length)) continue;
    const verbatim = source.text.slice(best.start, best.start + best.text.length) === best.text;
    citations.push({ n: source.n, sentence: best.text, quote: best.text, start: best.start,
      verified: verbatim });
  }
  const answer = citations.map((c) => `${c.quote} [${c.n}]`).join(' ');
  return { answer, citations };
}

/**
 * Markers for an answer that has none (small models often forget them), as Python's
 * `attribute`: each sentence gets the source it is clearly closest to in embedding space.
 * @param {string} text
 * @param {Float32Array[]} sentenceVectors one per sentence of `sentencesForAttribution(text)`
 * @param {Float32Array[]} sourceVectors one per source
 * @returns {[string, number[]]}
 */
export function attribute(text, sentenceVectors, sourceVectors) {
  const sentences = sentencesForAttribution(text);
  /** @type {number[]} */
  const cited = [];
  const out = sentences.map((sentence, i) => {
    let best = -1;
    let bestSim = -Infinity;
    sourceVectors.forEach((v, j) => {
      let sim = 0;
      for (let d = 0; d < v.length; d += 1) sim += v[d] * sentenceVectors[i][d];
      if (sim > bestSim) { bestSim = sim; best = j; }
    });
    if (best < 0 || bestSim < ATTRIBUTION_THRESHOLD) return sentence;
    const n = best + 1;
    if (!cited.includes(n)) cited.push(n);
    const stripped = sentence.trimEnd();
    const end = stripped.at(-1) ?? '';
    return '.!?'.includes(end) && end ? `${stripped.slice(0, -1)} [${n}]${end}` : `${stripped} [${n}]`;
  });
  return [out.join(' '), cited];
}

/** @param {string} text @returns {string[]} */
export function sentencesForAttribution(text) {
  return text.split(SENTENCE).filter((s) => s.trim());
}
