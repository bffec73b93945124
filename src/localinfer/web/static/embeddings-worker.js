// In-browser embeddings: transformers.js (ONNX Runtime compiled to WebAssembly) running
// all-MiniLM-L6-v2 in its own module worker, so embedding a corpus never blocks the page.
// Every model file is fetched here from the page's own origin (embeddings/manifest.json
// lists each file's sha256), verified, and kept in the localinfer model cache (Cache
// API, keyed by sha256); transformers.js is then handed those verified bytes through its
// custom-cache hook, with remote models off and its wasm from vendor/: nothing leaves the
// origin, nothing comes from a CDN.
//
// Messages: EmbeddingsRequest in, EmbeddingsReply out (lib/protocol.js).
import { fetchVerified } from './lib/download.js';
import { ownEntries } from './lib/timing.js';

const scope = /** @type {DedicatedWorkerGlobalScope} */ (/** @type {unknown} */ (self));
// Texts per model call: small padded batches were fastest for the Python embedder too.
const BATCH = 16;
// Python's embedder truncates at the model's trained length; the tokenizer config says 512.
const MAX_TOKENS = 256;

/**
 * The part of transformers.js used here (loaded at run time from the pinned copy).
 * @typedef {{data: Float32Array, dims: number[]}} Tensor
 * @typedef {((texts: string[], options: Record<string, unknown>) => Promise<Tensor>) & {tokenizer: {_tokenizerConfig: {model_max_length?: number}}}} Extractor
 */

/** @type {Extractor | null} */
let extractor = null;
let dim = 0;

/** @param {import('./lib/protocol.js').EmbeddingsReply} message @param {Transferable[]} [transfer] */
function post(message, transfer) { scope.postMessage(message, transfer ?? []); }

/**
 * @param {string} manifestUrl
 * @param {string} vendorBase URL of vendor/transformers/
 * @param {number} threads
 */
async function load(manifestUrl, vendorBase, threads) {
  const started = performance.now();
  /** @type {import('./lib/protocol.js').EmbedManifest} */
  const manifest = await (await fetch(manifestUrl, { cache: 'no-store' })).json();
  const model = manifest.models?.[0];
  if (!model) throw Object.assign(new Error(manifest.problem ?? 'no embedding model here'), { code: 'no_model' });
  const base = new URL(model.base, manifestUrl).href;
  /** @type {Map<string, Blob>} path inside the model folder -> verified bytes */
  const files = new Map();
  const total = model.files.reduce((n, f) => n + f.bytes, 0);
  let done = 0; // bytes of the files before this one
  let fetched = 0;
  for (const f of model.files) {
    const got = await fetchVerified({ name: `${model.id}/${f.path}`, url: new URL(f.path, base).href,
      sha256: f.sha256 }, (phase, bytes) => {
      if (phase === 'download') post({ op: 'progress', phase, done: done + bytes, total });
    });
    done += got.blob.size;
    fetched += got.fetched;
    files.set(f.path, got.blob);
  }
  post({ op: 'progress', phase: fetched ? 'verify' : 'cached', done: total, total });
  const tf = await import(new URL('transformers.min.js', vendorBase).href);
  const env = tf.env;
  env.allowRemoteModels = false;
  env.allowLocalModels = true;
  env.localModelPath = new URL('.', base).href.replace(/\/$/, '') + '/';
  env.useBrowserCache = false;
  env.useWasmCache = false; // it would import the runtime from a blob: URL (CSP says no)
  env.useCustomCache = true;
  const prefix = `${model.id}/`;
  env.customCache = {
    /** @param {string} key */
    async match(key) {
      const at = key.lastIndexOf(prefix);
      const blob = at >= 0 ? files.get(key.slice(at + prefix.length)) : undefined;
      return blob ? new Response(blob, { headers: { 'content-length': String(blob.size) } }) : undefined;
    },
    async put() { /* files are cached (verified) above, keyed by sha256 */ },
  };
  const wasm = env.backends.onnx.wasm;
  wasm.wasmPaths = { mjs: new URL('ort-wasm-simd-threaded.mjs', vendorBase).href,
    wasm: new URL('ort-wasm-simd-threaded.wasm', vendorBase).href };
  // More than one thread needs SharedArrayBuffer, i.e. a cross-origin-isolated page.
  const used = self.crossOriginIsolated ? Math.max(1, threads) : 1;
  wasm.numThreads = used;
  post({ op: 'progress', phase: 'load', done: total, total });
  const pipe = /** @type {Extractor} */ (await tf.pipeline('feature-extraction', model.id,
    { dtype: 'fp32', device: 'wasm' }));
  // The tokenizer's length limit is read from its config (a getter): set it there.
  pipe.tokenizer._tokenizerConfig.model_max_length = MAX_TOKENS;
  extractor = pipe;
  dim = model.dim;
  post({ op: 'loaded', model: model.id, dim, cached: fetched === 0, fetched_bytes: fetched,
    bytes: total, load_ms: performance.now() - started, threads: used });
}

/** @param {number} id @param {string[]} texts */
async function embed(id, texts) {
  if (!extractor) throw new Error('no embedding model loaded');
  const out = new Float32Array(texts.length * dim);
  // Shortest first, so each batch pads only to its own longest text (as Python does).
  const order = texts.map((t, i) => i).sort((a, b) => texts[a].length - texts[b].length);
  for (let at = 0; at < order.length; at += BATCH) {
    const rows = order.slice(at, at + BATCH);
    const result = await extractor(rows.map((i) => texts[i]), { pooling: 'mean', normalize: true });
    rows.forEach((row, j) => out.set(result.data.subarray(j * dim, (j + 1) * dim), row * dim));
    post({ op: 'progress', phase: 'embed', id, done: Math.min(at + BATCH, texts.length), total: texts.length });
  }
  post({ op: 'vectors', id, dim, data: out }, [out.buffer]);
}

scope.onmessage = (/** @type {MessageEvent<import('./lib/protocol.js').EmbeddingsRequest>} */ event) => {
  const msg = event.data;
  if (msg.op === 'load') {
    load(msg.manifestUrl, msg.vendorBase, msg.threads).catch((err) => post({ op: 'error',
      message: String(err?.message ?? err), code: err?.code ?? 'load_error' }));
  } else if (msg.op === 'embed') {
    embed(msg.id, msg.texts).catch((err) => post({ op: 'error', id: msg.id,
      message: String(err?.message ?? err), code: err?.code ?? 'embed_error' }));
  } else if (msg.op === 'timing') {
    post({ op: 'timing', entries: ownEntries() });
  }
};
