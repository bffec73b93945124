// `li.embeddings.create({input})`: OpenAI's embeddings call, answered by the localinfer
// gateway when the page found one (the same all-MiniLM-L6-v2 as Python, so vectors are
// comparable with the Python index), else by transformers.js in the embeddings worker.
// The worker's first download is disclosed (sizes from the manifest) and needs the
// page's yes, like the chat model's; later loads come from the verified cache.
import { isCached } from './cache.js';
import { BackendError, DownloadDeclined, EngineCrashed, LocalInferError } from './errors.js';

export const EMBED_MODEL = 'all-minilm-l6-v2';

/** @typedef {import('./protocol.js').EmbedManifestModel} EmbedManifestModel */
/** @typedef {import('./protocol.js').EmbeddingsLoaded} Loaded */
/** @typedef {import('./protocol.js').EmbeddingsReply | Error} Reply an Error: the worker died */

/**
 * @typedef {object} EmbedDisclosure
 * @property {'embeddings'} kind
 * @property {string} model
 * @property {number} bytes to download (files not yet cached)
 * @property {number} total_bytes
 * @property {string | null} license
 * @property {boolean} cached
 *
 * @typedef {object} EmbeddingResponse
 * @property {'list'} object
 * @property {{object: 'embedding', index: number, embedding: number[]}[]} data
 * @property {string} model
 * @property {{prompt_tokens: number, total_tokens: number}} usage
 * @property {'local' | 'browser'} tier
 * @property {string} backend
 *
 * @typedef {object} Vectors
 * @property {Float32Array[]} rows unit-length, one per input
 * @property {number} dim
 * @property {'local' | 'browser'} tier
 * @property {string} backend
 */

/** The one way a message reaches the embeddings worker. @param {Worker} worker
 * @param {import('./protocol.js').EmbeddingsRequest} msg */
function send(worker, msg) { worker.postMessage(msg); }

/** A reply that is not the answer, as an Error. @param {Reply} msg @returns {Error} */
function failure(msg) {
  if (msg instanceof Error) return msg;
  return msg.op === 'error' ? new LocalInferError(msg.message, msg.code)
    : new LocalInferError(`the embeddings worker answered ${msg.op}`, 'embed_error');
}

export class Embeddings {
  /**
   * @param {{workerUrl: string, manifestUrl: string, vendorBase: string, threads: number,
   *   gatewayUrl: string | null, onDisclose?: (d: any) => boolean | Promise<boolean>,
   *   onProgress?: (p: import('./types.js').Progress) => void}} opts gatewayUrl: the gateway's OpenAI base URL
   */
  constructor(opts) {
    this.opts = opts;
    /** @type {Worker | null} */
    this.worker = null;
    /** @type {Promise<Loaded> | null} */
    this.loading = null;
    /** @type {Loaded | null} */
    this.loaded = null;
    /** @type {boolean | null} the user's answer to the disclosure, for this page's life */
    this.disclosed = null;
    this.nextId = 1;
    /** @type {Map<number | 'load' | 'timing', (msg: Reply) => void>} */
    this.waiting = new Map();
    /** @type {EmbedManifestModel | null | undefined} */
    this.model = undefined;
  }

  /** @returns {Promise<EmbedManifestModel | null>} the manifest's model (null: none here) */
  async manifestModel() {
    if (this.model !== undefined) return this.model;
    try {
      const r = await fetch(this.opts.manifestUrl, { cache: 'no-store' });
      /** @type {import('./protocol.js').EmbedManifest | null} */
      const manifest = r.ok ? await r.json() : null;
      this.model = manifest?.models?.[0] ?? null;
    } catch { this.model = null; }
    return this.model ?? null;
  }

  /** What the first in-browser load costs (before any model byte is fetched).
   * @returns {Promise<EmbedDisclosure | null>} */
  async disclosure() {
    const model = await this.manifestModel();
    if (!model) return null;
    let missing = 0;
    for (const f of model.files) if (!(await isCached(f.sha256))) missing += f.bytes;
    return { kind: 'embeddings', model: model.id, bytes: missing, total_bytes: model.bytes,
      license: model.license, cached: missing === 0 };
  }

  /** @returns {Worker} */
  spawn() {
    if (this.worker) return this.worker;
    const worker = new Worker(this.opts.workerUrl, { type: 'module', name: 'localinfer-embeddings' });
    worker.onmessage = (/** @type {MessageEvent<import('./protocol.js').EmbeddingsReply>} */ event) =>
      this.receive(event.data);
    worker.onerror = (event) => {
      event.preventDefault();
      this.die(new EngineCrashed(`the embeddings worker crashed: ${event.message || 'unknown error'}`));
    };
    this.worker = worker;
    return worker;
  }

  /** @param {Error} error */
  die(error) {
    this.worker?.terminate();
    this.worker = null;
    this.loaded = null;
    this.loading = null;
    for (const deliver of this.waiting.values()) deliver(error);
    this.waiting.clear();
  }

  /** @param {import('./protocol.js').EmbeddingsReply} msg */
  receive(msg) {
    if (msg.op === 'progress') {
      this.opts.onProgress?.({ phase: msg.phase, done: msg.done, total: msg.total, kind: 'embeddings' });
    }
    else if (msg.op === 'loaded' || (msg.op === 'error' && msg.id === undefined)) {
      this.waiting.get('load')?.(msg);
      this.waiting.delete('load');
    } else if (msg.op === 'timing') {
      this.waiting.get('timing')?.(msg);
      this.waiting.delete('timing');
    } else if (msg.id !== undefined) { // vectors, or the error of an embed
      this.waiting.get(msg.id)?.(msg);
      this.waiting.delete(msg.id);
    }
  }

  /** Load the in-browser model (disclosed first when it is not cached).
   * @returns {Promise<Loaded>} what the worker reported */
  async ensure() {
    if (this.loaded) return this.loaded;
    if (this.loading) return this.loading;
    const info = await this.disclosure();
    if (!info) throw new LocalInferError('no embedding model is served next to this page '
      + '(embeddings/manifest.json lists none)', 'no_embedding_model');
    if (!info.cached) {
      if (this.disclosed === null) {
        this.disclosed = this.opts.onDisclose ? Boolean(await this.opts.onDisclose(info)) : false;
      }
      if (!this.disclosed) throw new DownloadDeclined(`the embedding model download (${info.bytes} bytes) was declined`);
      try { await navigator.storage.persist(); } catch { /* best effort */ }
    }
    const worker = this.spawn();
    this.loading = new Promise((resolve, reject) => {
      this.waiting.set('load', (msg) => {
        this.loading = null;
        if (!(msg instanceof Error) && msg.op === 'loaded') { this.loaded = msg; resolve(msg); } else {
          reject(failure(msg));
        }
      });
    });
    send(worker, { op: 'load', manifestUrl: this.opts.manifestUrl,
      vendorBase: this.opts.vendorBase, threads: this.opts.threads });
    return this.loading;
  }

  /**
   * Unit vectors for `texts`: the gateway's when there is one, else the worker's.
   * @param {string[]} texts
   * @param {{local?: boolean}} [opts] local: false skips the gateway
   * @returns {Promise<Vectors>}
   */
  async vectors(texts, opts = {}) {
    if (this.opts.gatewayUrl && opts.local !== false) {
      try {
        return await this.fromGateway(texts);
      } catch (err) {
        // A gateway that is gone, failing or without the embedder hands over to the worker:
        // it runs the same model, so the vectors stay comparable.
        if (!(err instanceof BackendError)) throw err;
      }
    }
    return this.fromWorker(texts);
  }

  /** @param {string[]} texts @returns {Promise<Vectors>} */
  async fromGateway(texts) {
    const url = `${this.opts.gatewayUrl}/embeddings`;
    let r;
    try {
      // Sensitive: the gateway never hands these texts to a remote embedder.
      r = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json',
        'x-localinfer-sensitive': 'true' },
        body: JSON.stringify({ model: EMBED_MODEL, input: texts }) });
    } catch (err) {
      throw new BackendError(`${url}: ${String(err)}`);
    }
    if (!r.ok) throw new BackendError(`${url}: HTTP ${r.status}`, r.status);
    const body = await r.json();
    const rows = body.data.sort((/** @type {any} */ a, /** @type {any} */ b) => a.index - b.index)
      .map((/** @type {any} */ d) => Float32Array.from(d.embedding));
    return { rows, dim: rows[0]?.length ?? 0, tier: 'local',
      backend: r.headers.get('x-localinfer-backend') ?? new URL(url).host };
  }

  /** @param {string[]} texts @returns {Promise<Vectors>} */
  async fromWorker(texts) {
    await this.ensure();
    const worker = this.spawn();
    const id = this.nextId++;
    /** @type {Reply} */
    const msg = await new Promise((resolve) => {
      this.waiting.set(id, resolve);
      send(worker, { op: 'embed', id, texts });
    });
    if (msg instanceof Error || msg.op !== 'vectors') throw failure(msg);
    const data = msg.data;
    /** @type {Float32Array[]} */
    const rows = [];
    for (let i = 0; i < texts.length; i += 1) rows.push(data.subarray(i * msg.dim, (i + 1) * msg.dim));
    return { rows, dim: msg.dim, tier: 'browser', backend: `transformers.js:${EMBED_MODEL}` };
  }

  /**
   * OpenAI's `embeddings.create`.
   * @param {{input: string | string[], model?: string}} params
   * @returns {Promise<EmbeddingResponse>}
   */
  async create(params) {
    const texts = typeof params.input === 'string' ? [params.input] : params.input;
    if (!Array.isArray(texts) || texts.some((t) => typeof t !== 'string')) {
      throw new LocalInferError('input is a string or an array of strings', 'invalid_request');
    }
    if (params.model && params.model !== EMBED_MODEL) {
      throw new LocalInferError(`only ${EMBED_MODEL} runs here`, 'model_not_found');
    }
    const got = await this.vectors(texts);
    const chars = texts.reduce((n, t) => n + t.length, 0);
    return { object: 'list', model: EMBED_MODEL, tier: got.tier, backend: got.backend,
      data: got.rows.map((row, index) => ({ object: 'embedding', index, embedding: Array.from(row) })),
      // Estimated (~4 characters a token) when the worker answered: it does not count.
      usage: { prompt_tokens: Math.ceil(chars / 4), total_tokens: Math.ceil(chars / 4) } };
  }

  /** @returns {Promise<import('./timing.js').TimingEntry[]>} the worker's Resource Timing */
  async timing() {
    if (!this.worker) return [];
    const worker = this.worker;
    /** @type {Reply} */
    const msg = await new Promise((resolve) => {
      this.waiting.set('timing', resolve);
      send(worker, { op: 'timing' });
    });
    return msg instanceof Error || msg.op !== 'timing' ? [] : msg.entries;
  }
}
