// The in-browser engine: wllama (llama.cpp compiled to WebAssembly) inside our own module
// worker, so the page's thread only posts messages and renders. wllama starts one more
// worker of its own (from a blob); it gets the engine and the model as blobs from here,
// so every network fetch of the engine happens in this worker and shows in its Resource
// Timing entries (reported to the page for the "where did my data go" panel).
//
// Messages: EngineRequest in, EngineReply out (lib/protocol.js).
import { download, fetchVerified } from './lib/download.js';
import { ownEntries } from './lib/timing.js';

/**
 * The part of wllama's API used here (vendor/wllama/index.js is loaded at run time from
 * the pinned copy, so its types are declared, not imported).
 * @typedef {object} WllamaChunk
 * @property {number} token
 * @property {string} currentText
 *
 * @typedef {object} WllamaInstance
 * @property {(blobs: Blob[], config: Record<string, unknown>) => Promise<void>} loadModel
 * @property {(messages: {role: string, content: string}[], options: Record<string, unknown>) => Promise<AsyncIterable<WllamaChunk>>} createChatCompletion
 * @property {(messages: {role: string, content: string}[], addAssistant: boolean) => Promise<string>} formatChat
 * @property {(text: string, special?: boolean) => Promise<number[]>} tokenize
 * @property {() => number} getNumThreads
 * @property {() => boolean} isMultithread
 * @property {() => Promise<void>} exit
 */

const scope = /** @type {DedicatedWorkerGlobalScope} */ (/** @type {unknown} */ (self));
// wllama resolves its asset URLs against document.baseURI, which a worker lacks.
const shimmed = /** @type {any} */ (self);
if (typeof shimmed.document === 'undefined') shimmed.document = { baseURI: self.location.href };

/** @type {WllamaInstance | null} */
let wllama = null;
/** @type {Map<number, AbortController>} */
const running = new Map();

/** @param {import('./lib/protocol.js').EngineReply} message */
function post(message) { scope.postMessage(message); }

/**
 * @param {import('./lib/protocol.js').EngineModel} model
 * @param {string} engineBase URL of vendor/wllama/
 * @param {number} threads
 */
async function load(model, engineBase, threads) {
  const started = performance.now();
  const { blob, fetched, downloadMs } = await fetchVerified(model,
    (phase, done, total) => post({ op: 'progress', phase, done, total }));
  const cached = fetched === 0;
  if (cached) post({ op: 'progress', phase: 'cached', done: blob.size, total: blob.size });
  post({ op: 'progress', phase: 'load', done: 0, total: blob.size });
  const multi = threads > 1 && self.crossOriginIsolated;
  const wasmName = multi ? 'multi-thread/wllama.wasm' : 'single-thread/wllama.wasm';
  // The engine: the HTTP cache, revalidated by ETag.
  const wasm = await download(new URL(wasmName, engineBase).href,
    { type: 'application/wasm', cache: 'no-cache' });
  const wasmUrl = URL.createObjectURL(wasm);
  const mod = await import(new URL('index.js', engineBase).href);
  const paths = multi ? { 'single-thread/wllama.wasm': wasmUrl, 'multi-thread/wllama.wasm': wasmUrl }
    : { 'single-thread/wllama.wasm': wasmUrl };
  const quiet = { debug() {}, log() {}, warn() {}, error: console.error.bind(console) };
  const engine = /** @type {WllamaInstance} */ (new mod.Wllama(paths,
    { suppressNativeLog: true, logger: quiet }));
  await engine.loadModel([blob], { n_threads: multi ? threads : 1, n_ctx: 2048, n_batch: 32 });
  // A crash in wllama's own worker would otherwise leave its promises pending forever.
  const inner = /** @type {any} */ (engine).proxy?.worker;
  if (inner instanceof Worker) {
    inner.addEventListener('error', (event) => {
      post({ op: 'fatal', message: `engine worker crashed: ${event.message || 'unknown error'}` });
      scope.close();
    });
  }
  wllama = engine;
  post({ op: 'loaded', cached, fetched_bytes: fetched, download_ms: downloadMs, verified: true,
    load_ms: performance.now() - started, threads: engine.getNumThreads(),
    multithread: engine.isMultithread() });
}

/**
 * @param {number} id
 * @param {import('./lib/protocol.js').EngineChatRequest} req
 */
async function chat(id, req) {
  if (!wllama) throw new Error('no model loaded');
  const ctrl = new AbortController();
  running.set(id, ctrl);
  const started = performance.now();
  const maxTokens = req.max_tokens ?? 256;
  try {
    const prompt = await wllama.formatChat(req.messages, true);
    const promptTokens = (await wllama.tokenize(prompt, true)).length;
    const stream = await wllama.createChatCompletion(req.messages, {
      nPredict: maxTokens, stream: true, abortSignal: ctrl.signal,
      sampling: { temp: req.temperature ?? 0.7, top_p: req.top_p ?? 0.95 },
    });
    const templated = performance.now();
    let sent = '';
    let tokens = 0;
    /** @type {number | null} */
    let firstAt = null;
    for await (const chunk of stream) {
      tokens += 1;
      firstAt ??= performance.now();
      // Hold back a trailing partial UTF-8 sequence until the next token completes it.
      const text = chunk.currentText.replace(/\uFFFD+$/, '');
      if (text.length > sent.length && text.startsWith(sent)) {
        post({ op: 'token', id, text: text.slice(sent.length) });
        sent = text;
      }
      if (ctrl.signal.aborted) break;
    }
    const ended = performance.now();
    post({ op: 'done', id, aborted: ctrl.signal.aborted,
      finish_reason: ctrl.signal.aborted ? 'stop' : tokens >= maxTokens ? 'length' : 'stop',
      usage: { prompt_tokens: promptTokens, completion_tokens: tokens,
        total_tokens: promptTokens + tokens },
      timings: { first_token_ms: firstAt === null ? null : firstAt - started,
        template_ms: templated - started, prompt_tokens: promptTokens,
        decode_ms: firstAt === null ? 0 : ended - firstAt, tokens } });
  } finally {
    running.delete(id);
  }
}

scope.onmessage = (/** @type {MessageEvent<import('./lib/protocol.js').EngineRequest>} */ event) => {
  const msg = event.data;
  if (msg.op === 'load') {
    load(msg.model, msg.engineBase, msg.threads).catch((err) => post({ op: 'error',
      message: String(err?.message ?? err), code: err?.code ?? 'load_error' }));
  } else if (msg.op === 'chat') {
    chat(msg.id, msg).catch((err) => post({ op: 'error', id: msg.id,
      message: String(err?.message ?? err), code: err?.code ?? 'inference_error' }));
  } else if (msg.op === 'abort') {
    running.get(msg.id)?.abort();
  } else if (msg.op === 'timing') {
    post({ op: 'timing', entries: ownEntries() });
  } else if (msg.op === 'crash') {
    // Tests: die the way a real crash does, with an uncaught error.
    setTimeout(() => { throw new Error('simulated engine crash'); }, 0);
  }
};
post({ op: 'ready' });
