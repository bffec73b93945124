// `li.documents`: private documents indexed in the page. Files (or texts) are read,
// chunked exactly as the Python index chunks them, embedded (the gateway's embedder, or
// transformers.js in the embeddings worker), and kept in IndexedDB; search is hybrid
// (vectors + BM25, reciprocal rank fusion); ask answers through local tiers only.
import { sha256Hex } from '../cache.js';
import { LocalInferError, NoBackend, SensitiveDataBlocked, DownloadDeclined, ConsentRequired } from '../errors.js';
import { attribute, buildMessages, citationsOf, cleanMarkers, extractive, sentencesForAttribution } from './ask.js';
import { chunkBlocks, embedText } from './chunking.js';
import { decode, DocumentError, loadDocument } from './loaders.js';
import { SearchIndex } from './search.js';
import { Store } from './store.js';

export const DEFAULT_COLLECTION = 'default';
const EMBED_BATCH = 64;
const MAX_FILE_BYTES = 64 * 1024 * 1024;

/**
 * @typedef {File | {name: string, text: string} | string} DocumentInput
 * @typedef {{phase: 'read' | 'embed' | 'store' | 'done', name: string, done: number, total: number}} DocProgress
 * @typedef {{added: string[], updated: string[], unchanged: string[], skipped: {name: string, reason: string}[], chunks: number, embedded: number}} AddReport
 * @typedef {import('./ask.js').Source} Source
 * @typedef {import('./ask.js').Citation} Citation
 * @typedef {{question: string, answer: string, mode: 'model' | 'extractive', sources: Source[], cited: number[], citations: Citation[], tier: string | null, backend: string | null, note: string | null, attributed: boolean}} DocAnswer
 * @typedef {(messages: import('../types.js').ChatMessage[]) => Promise<{content: string, tier: string, backend: string}>} LocalChat
 */

/** @param {DocumentInput} input @returns {Promise<{name: string, text: string, bytes: number}>} */
async function read(input) {
  if (typeof input === 'string') {
    return { name: `text-${(await sha256Hex(new TextEncoder().encode(input).buffer)).slice(0, 12)}`,
      text: input, bytes: input.length };
  }
  if (typeof Blob !== 'undefined' && input instanceof Blob) {
    const file = /** @type {File} */ (input);
    if (file.size > MAX_FILE_BYTES) throw new DocumentError(`${file.name}: larger than 64 MB`);
    const bytes = new Uint8Array(await file.arrayBuffer());
    return { name: file.name, text: decode(bytes), bytes: bytes.byteLength };
  }
  const doc = /** @type {{name: string, text: string}} */ (input);
  if (typeof doc?.name !== 'string' || typeof doc?.text !== 'string') {
    throw new LocalInferError('a document is a File, a string, or {name, text}', 'invalid_request');
  }
  return { name: doc.name, text: doc.text, bytes: doc.text.length };
}

/** @param {any} row @param {number} n @param {number} score @returns {Source} */
function toSource(row, n, score) {
  const lines = row.start_line !== null ? `:${row.start_line}-${row.end_line}` : '';
  return { n, name: row.name, collection: row.collection, text: row.text, heading: row.heading,
    start_line: row.start_line, end_line: row.end_line, location: `${row.name}${lines}`, score };
}

export class Documents {
  /**
   * @param {{embeddings: import('../embeddings.js').Embeddings, chat: LocalChat, dbName?: string}} opts
   */
  constructor(opts) {
    this.embeddings = opts.embeddings;
    this.chat = opts.chat;
    this.dbName = opts.dbName;
    /** @type {Promise<Store> | null} */
    this.opened = null;
    /** @type {Map<string, SearchIndex>} collection ('' = all) -> snapshot */
    this.snapshots = new Map();
    /** texts embedded during this page's life (a re-add of unchanged content adds 0) */
    this.embedded = 0;
  }

  /** @returns {Promise<Store>} */
  store() {
    this.opened ??= Store.open(this.dbName);
    return this.opened;
  }

  /**
   * Add documents to a collection; unchanged content (same name, same sha256) is a no-op.
   * @param {DocumentInput | DocumentInput[]} inputs
   * @param {{collection?: string, onProgress?: (p: DocProgress) => void}} [opts]
   * @returns {Promise<AddReport>}
   */
  async add(inputs, opts = {}) {
    const collection = (opts.collection ?? DEFAULT_COLLECTION).trim();
    if (!collection || collection.length > 100) throw new LocalInferError('a collection name is 1 to 100 characters', 'invalid_request');
    const list = Array.isArray(inputs) ? inputs : [inputs];
    const store = await this.store();
    /** @type {AddReport} */
    const report = { added: [], updated: [], unchanged: [], skipped: [], chunks: 0, embedded: 0 };
    for (let i = 0; i < list.length; i += 1) {
      let doc;
      try { doc = await read(list[i]); } catch (err) {
        report.skipped.push({ name: /** @type {any} */ (list[i])?.name ?? '?', reason: String(/** @type {any} */ (err)?.message ?? err) });
        continue;
      }
      const progress = (/** @type {DocProgress['phase']} */ phase, done = i, total = list.length) =>
        opts.onProgress?.({ phase, name: doc.name, done, total });
      progress('read');
      const sha256 = await sha256Hex(new TextEncoder().encode(doc.text).buffer);
      const existing = await store.doc(collection, doc.name);
      if (existing?.sha256 === sha256) { report.unchanged.push(doc.name); continue; }
      let loaded;
      try { loaded = loadDocument(doc.name, doc.text); } catch (err) {
        report.skipped.push({ name: doc.name, reason: String(/** @type {any} */ (err)?.message ?? err) });
        continue;
      }
      const chunks = chunkBlocks(loaded.blocks);
      /** @type {Float32Array[]} */
      const vectors = [];
      let model = { dim: 0 };
      for (let at = 0; at < chunks.length; at += EMBED_BATCH) {
        const got = await this.embeddings.vectors(chunks.slice(at, at + EMBED_BATCH).map(embedText));
        vectors.push(...got.rows);
        model = got;
        this.embedded += got.rows.length;
        report.embedded += got.rows.length;
        progress('embed', Math.min(at + EMBED_BATCH, chunks.length), chunks.length);
      }
      progress('store');
      const rows = chunks.map((c, seq) => ({ collection, name: doc.name, seq, text: c.text,
        heading: c.heading, start_line: c.start_line, end_line: c.end_line,
        vector: Float32Array.from(vectors[seq]).buffer }));
      await store.put({ collection, name: doc.name, kind: loaded.kind, sha256, bytes: doc.bytes,
        chunks: rows.length, added: Date.now() }, rows,
      { name: collection, model: 'all-minilm-l6-v2', dim: model.dim || 384, created: Date.now() });
      this.snapshots.clear();
      report.chunks += rows.length;
      (existing ? report.updated : report.added).push(doc.name);
    }
    opts.onProgress?.({ phase: 'done', name: '', done: list.length, total: list.length });
    return report;
  }

  /** Documents (optionally of one collection), with their collection's metadata.
   * @param {{collection?: string}} [opts] */
  async list(opts = {}) {
    const store = await this.store();
    return { documents: await store.docs(opts.collection), collections: await store.collections() };
  }

  /**
   * Remove documents by name, or (no names) a whole collection.
   * @param {string | string[] | null} [names]
   * @param {{collection?: string}} [opts]
   * @returns {Promise<string[]>} names removed
   */
  async remove(names = null, opts = {}) {
    const store = await this.store();
    const list = names === null ? null : Array.isArray(names) ? names : [names];
    const gone = await store.remove(opts.collection ?? DEFAULT_COLLECTION, list);
    this.snapshots.clear();
    return gone;
  }

  /** Forget every document of every collection. */
  async clear() {
    await (await this.store()).clear();
    this.snapshots.clear();
  }

  /** @param {string | undefined} collection @returns {Promise<SearchIndex>} */
  async snapshot(collection) {
    const key = collection ?? '';
    let found = this.snapshots.get(key);
    if (!found) {
      const rows = await (await this.store()).chunks(collection);
      found = new SearchIndex(rows, rows.length ? rows[0].vector.byteLength / 4 : 384);
      this.snapshots.set(key, found);
    }
    return found;
  }

  /**
   * Hybrid search: the same result shape as the Python index's `search --json`.
   * @param {string} q
   * @param {{k?: number, collection?: string}} [opts]
   * @returns {Promise<Source[]>}
   */
  async search(q, opts = {}) {
    const index = await this.snapshot(opts.collection);
    if (!index.rows.length) return [];
    const [query] = (await this.embeddings.vectors([q])).rows;
    return index.search(q, query, opts.k ?? 5)
      .map((hit, i) => toSource(index.rows[hit.row], i + 1, hit.score));
  }

  /**
   * Retrieve, then answer through a local tier (never remote: documents are sensitive);
   * with none, an extractive answer, labelled as such.
   * @param {string} q
   * @param {{k?: number, collection?: string}} [opts]
   * @returns {Promise<DocAnswer>}
   */
  async ask(q, opts = {}) {
    const sources = await this.search(q, { k: opts.k ?? 4, collection: opts.collection });
    /** @type {DocAnswer} */
    const base = { question: q, answer: '', mode: 'extractive', sources, cited: [], citations: [],
      tier: null, backend: null, note: null, attributed: false };
    if (!sources.length) return { ...base, note: 'no documents indexed' };
    let reply = null;
    let why = null;
    try {
      reply = await this.chat(buildMessages(q, sources));
    } catch (err) {
      const declined = [NoBackend, SensitiveDataBlocked, DownloadDeclined, ConsentRequired]
        .some((kind) => err instanceof kind);
      if (!declined && !(err instanceof LocalInferError)) throw err;
      why = String(/** @type {any} */ (err).message ?? err);
    }
    if (reply) {
      let [text, cited] = cleanMarkers(reply.content.trim(), sources.length);
      let attributed = false;
      if (!cited.length && text) {
        const sentences = sentencesForAttribution(text);
        const got = await this.embeddings.vectors([...sentences,
          ...sources.map((src) => embedText(src))]);
        [text, cited] = attribute(text, got.rows.slice(0, sentences.length),
          got.rows.slice(sentences.length));
        attributed = cited.length > 0;
      }
      const citations = citationsOf(text, sources);
      if (cited.length && citations.some((c) => c.verified)) {
        return { ...base, answer: text, mode: 'model', cited, citations, tier: reply.tier,
          backend: reply.backend, attributed };
      }
      why = `the model's answer cited no source that could be verified (${reply.backend})`;
    }
    const { answer, citations } = extractive(q, sources);
    return { ...base, answer, citations, cited: citations.map((c) => c.n),
      note: `extractive answer: sentences quoted from the sources, no model wrote this (${why})` };
  }
}
