// localinfer.js: the SDK a web page imports (an ES module, no bundler needed).
//
//   import { LocalInfer } from 'http://127.0.0.1:8642/ui/localinfer.js';
//   const li = await LocalInfer.connect({ onDisclose, onConsent });
//   const reply = await li.chat.completions.create({ messages: [{ role: 'user', content: 'Hi' }] });
//   reply.choices[0].message.content; reply.tier;  // 'local' | 'browser' | 'remote'
//
// Tiers, in order: a local server (the gateway that served the page, the configured
// gateway, local servers the page may reach); the browser tier, engine by engine (`engines`,
// default the browser's own model through the Prompt API, then wllama in a Web Worker; a
// first download of either is disclosed and waits for the page's yes); a page-configured
// remote endpoint, only after the user's consent, and never for `sensitive` requests.
import { BACKEND as BUILTIN_BACKEND, BuiltinEngine, STATES as BUILTIN_STATES } from './lib/builtin.js';
import { chooseEngine } from './lib/choose.js';
import { clearCached, deleteCached, isCached, listCached } from './lib/cache.js';
import { grant, isGranted, listGrants, revoke } from './lib/consent.js';
import { detect, DEFAULT_GATEWAY, DEFAULT_SERVERS } from './lib/detect.js';
import { BrowserEngine, defaultThreads } from './lib/engine.js';
import { BrowserSandbox } from './lib/sandbox.js';
import { Documents } from './lib/documents/index.js';
import { Embeddings } from './lib/embeddings.js';
import {
  Aborted, BackendError, ConsentRequired, ContextLengthExceeded, DownloadDeclined, EngineCrashed,
  IntegrityError, LocalInferError, NoBackend, SensitiveDataBlocked,
} from './lib/errors.js';
import { postChat, sseJson } from './lib/http.js';
import { byOrigin, ownEntries } from './lib/timing.js';

export { BrowserSandbox } from './lib/sandbox.js';
export {
  Aborted, BackendError, ConsentRequired, ContextLengthExceeded, DownloadDeclined, EngineCrashed,
  IntegrityError, LocalInferError, NoBackend, SensitiveDataBlocked, DEFAULT_GATEWAY, DEFAULT_SERVERS,
};

/** @typedef {import('./lib/types.js').Tier} Tier */
/** @typedef {import('./lib/types.js').ChatParams} ChatParams */
/** @typedef {import('./lib/types.js').ChatCompletion} ChatCompletion */
/** @typedef {import('./lib/types.js').ChatChunk} ChatChunk */
/** @typedef {import('./lib/types.js').Disclosure} Disclosure */
/** @typedef {import('./lib/types.js').ConsentRequest} ConsentRequest */
/** @typedef {import('./lib/types.js').RemoteConfig} RemoteConfig */
/** @typedef {import('./lib/types.js').ModelEntry} ModelEntry */
/** @typedef {import('./lib/types.js').Progress} Progress */
/** @typedef {import('./lib/types.js').BuiltinDisclosure} BuiltinDisclosure */
/** @typedef {'builtin' | 'wllama' | 'webllm'} EngineName */

/**
 * @typedef {object} ConnectOptions
 * @property {string | null} [gateway] gateway URL (default http://127.0.0.1:8642; null: none)
 * @property {string[]} [servers] local OpenAI-compatible servers to try after the gateway
 * @property {RemoteConfig | null} [remote] a remote endpoint, used only with consent
 * @property {boolean} [browser] allow the browser tier, every engine of it (default true)
 * @property {EngineName[]} [engines] the browser tier's engines, in order (default
 *   ['builtin', 'wllama']; 'webllm' is accepted and skipped: this build does not bundle it)
 * @property {{expectedInputs?: {type: string, languages?: string[]}[],
 *   expectedOutputs?: {type: string, languages?: string[]}[]}} [builtin] passed to the
 *   Prompt API's `availability()` and `create()` (e.g. the languages the page expects)
 * @property {string} [model] in-browser model name (default: the manifest's first)
 * @property {string} [manifestUrl] default: manifest.json next to this module
 * @property {number} [threads] in-browser engine threads (default: 1 on <= 2 cores, else cores - 1)
 * @property {number} [timeoutMs] per-probe detection timeout (default 500)
 * @property {(d: Disclosure) => boolean | Promise<boolean>} [onDisclose] asked before a first
 *   download; the browser's own model asks with a BuiltinDisclosure (`kind: 'builtin'`), the
 *   embedder with `kind: 'embeddings'`
 * @property {(c: ConsentRequest) => boolean | Promise<boolean>} [onConsent] asked before a remote is used
 * @property {(p: Progress) => void} [onProgress]
 */

const ASSUMED_BPS = 10e6;
/** @type {EngineName[]} */
export const ENGINES = ['builtin', 'wllama', 'webllm'];
/** @type {EngineName[]} */
export const DEFAULT_ENGINES = ['builtin', 'wllama'];
/** Which browser-tier engines run on this device (so `sensitive` requests may use them):
 * the browser's own model is on-device too. */
const ON_DEVICE = { builtin: true, wllama: true, webllm: true };

/** @param {EngineName[] | null | undefined} engines @returns {EngineName[]} */
function engineOrder(engines) {
  if (engines === undefined || engines === null) return [...DEFAULT_ENGINES];
  const unknown = engines.filter((e) => !ENGINES.includes(e));
  if (unknown.length || new Set(engines).size !== engines.length) {
    throw new LocalInferError(`engines: ${JSON.stringify(engines)} — each of ${ENGINES.join(', ')} at most once`,
      'invalid_options');
  }
  return [...engines];
}
const BANDWIDTH_KEY = 'localinfer.bandwidth.v1';

/** @param {string} prefix @returns {string} */
function newId(prefix) { return `${prefix}-${Math.random().toString(36).slice(2, 12)}`; }

/** @returns {{bps: number, basis: 'measured' | 'assumed'}} */
function bandwidth() {
  const measured = Number(localStorage.getItem(BANDWIDTH_KEY) ?? 0);
  return measured > 0 ? { bps: measured, basis: 'measured' } : { bps: ASSUMED_BPS, basis: 'assumed' };
}

/**
 * A stream of chunks that also says where it comes from (`tier`, `backend`).
 * @implements {AsyncIterable<ChatChunk>}
 */
export class ChatStream {
  /**
   * @param {Tier} tier
   * @param {string} backend
   * @param {AsyncGenerator<ChatChunk>} chunks
   * @param {AbortController} controller
   */
  constructor(tier, backend, chunks, controller) {
    /** @type {Tier} */
    this.tier = tier;
    this.backend = backend;
    this.chunks = chunks;
    this.controller = controller;
  }

  [Symbol.asyncIterator]() { return this.chunks; }

  /** Stop generating (the engine stops between tokens; a server's request is cancelled). */
  abort() { this.controller.abort(); }
}

export class LocalInfer {
  /**
   * @param {ConnectOptions} options
   * @param {import('./lib/detect.js').Detected} detected
   * @param {any} manifest
   */
  constructor(options, detected, manifest) {
    this.options = options;
    this.detected = detected;
    this.manifest = manifest;
    const base = new URL('.', import.meta.url);
    this.engine = new BrowserEngine({
      workerUrl: new URL('engine-worker.js', base).href,
      engineBase: new URL('vendor/wllama/', base).href,
      threads: options.threads ?? defaultThreads(),
    });
    this.engine.onProgress = (p) => options.onProgress?.(p);
    /** @type {EngineName[]} the browser tier's engines, in order */
    this.engines = engineOrder(options.engines);
    /** The browser's own model (Prompt API). */
    this.builtin = new BuiltinEngine({ options: options.builtin });
    /** @type {boolean | null} the user's answer to the built-in model's disclosure */
    this.builtinDisclosed = null;
    /** @type {boolean | null} the user's answer to the disclosure, for this page's life */
    this.disclosed = null;
    /** @type {Set<AbortController>} */
    this.inflight = new Set();
    const self = this;
    this.chat = { completions: {
      /**
       * @param {ChatParams} params
       * @returns {Promise<ChatCompletion | ChatStream>}
       */
      create(params) { return self.create(params); },
    } };
    this.cache = {
      list: listCached,
      /** @param {string} name */
      delete: (name) => deleteCached(name),
      clear: clearCached,
    };
    this.consent = {
      list: listGrants,
      /** @param {string} [url] */
      revoke: (url) => revoke(url),
    };
    this.privacy = { origins: () => this.origins() };
    /** The WebAssembly sandbox (the Python side's guests, in a worker that cannot fetch):
     * `await li.sandbox.run(code, {files, timeout, runtime})`. */
    this.sandbox = new BrowserSandbox({ workerUrl: new URL('sandbox-worker.js', base).href,
      runtimeBase: new URL('sandbox/', base).href });
    /** Embeddings: the gateway's when it served or was found, else transformers.js in its
     * worker (disclosed through `onDisclose` with `kind: 'embeddings'`). */
    this.embedder = new Embeddings({ workerUrl: new URL('embeddings-worker.js', base).href,
      manifestUrl: new URL('embeddings/manifest.json', base).href,
      vendorBase: new URL('vendor/transformers/', base).href, threads: options.threads ?? defaultThreads(),
      gatewayUrl: detected.kind === 'gateway' ? detected.baseUrl : null,
      onDisclose: options.onDisclose, onProgress: options.onProgress });
    this.embeddings = {
      /** @param {{input: string | string[], model?: string}} params */
      create: (params) => this.embedder.create(params),
    };
    /** Private documents in IndexedDB; `ask` answers through local tiers only. */
    this.documents = new Documents({ embeddings: this.embedder, chat: async (messages) => {
      const reply = /** @type {ChatCompletion} */ (await this.create({ messages, sensitive: true,
        max_tokens: 200, temperature: 0.2 }));
      return { content: reply.choices[0]?.message?.content ?? '', tier: reply.tier, backend: reply.backend };
    } });
  }

  /**
   * Detect the tiers (once per page life) and read the engine manifest.
   * @param {ConnectOptions} [options]
   * @returns {Promise<LocalInfer>}
   */
  static async connect(options = {}) {
    const detected = await detect({ gateway: options.gateway, servers: options.servers,
      timeoutMs: options.timeoutMs });
    let manifest = null;
    if (options.browser !== false) {
      const url = options.manifestUrl ?? new URL('manifest.json', import.meta.url).href;
      try {
        const r = await fetch(url, { cache: 'no-store' });
        if (r.ok) manifest = { ...(await r.json()), url };
      } catch { /* no manifest: no in-browser tier */ }
    }
    return new LocalInfer(options, detected, manifest);
  }

  /** @returns {ModelEntry | null} */
  browserModel() {
    if (this.options.browser === false || !this.manifest?.engine?.built) return null;
    const models = this.manifest.models ?? [];
    const chosen = this.options.model
      ? models.find((/** @type {any} */ m) => m.name === this.options.model) : models[0];
    if (!chosen) return null;
    return { ...chosen, url: new URL(chosen.url, this.manifest.url).href };
  }

  /** What answers, and what the in-browser engine has loaded. */
  async status() {
    const model = this.browserModel();
    const allowed = this.options.browser !== false;
    const builtin = this.engines.includes('builtin') && allowed ? await this.builtin.check() : null;
    const builtinUsable = builtin !== null && BUILTIN_STATES[builtin.state].usable
      && !(BUILTIN_STATES[builtin.state].disclose && this.builtinDisclosed === false);
    /** @type {Record<EngineName, boolean>} */
    const usable = { builtin: builtinUsable, wllama: model !== null && this.engines.includes('wllama'),
      webllm: false };
    const first = this.engines.find((e) => usable[e]) ?? null;
    return {
      local: { kind: this.detected.kind, url: this.detected.origin, models: this.detected.models,
        tried: this.detected.tried },
      browser: { available: first !== null,
        engine: first === 'builtin' ? BUILTIN_BACKEND : 'wllama', engines: this.engines,
        builtin: builtin ? { ...builtin, disclosed: this.builtinDisclosed, bytes: this.builtin.bytes } : null,
        choice: await chooseEngine(),
        engine_version: this.manifest?.engine?.version ?? null,
        model: model?.name ?? null, cached: model ? await isCached(model.sha256) : false,
        loaded: this.engine.loaded, threads: this.engine.threads,
        problem: this.manifest?.engine?.problem ?? (this.manifest ? null : 'no manifest') },
      remote: this.options.remote ? { url: this.options.remote.baseUrl,
        granted: isGranted(this.options.remote.baseUrl) } : null,
      order: ['local', 'browser', 'remote'],
    };
  }

  /** Whether the browser's own model may answer now: available, or its download disclosed
   * and accepted (asked once per page life).
   * @returns {Promise<{ok: boolean, why: string}>} */
  async ensureBuiltin() {
    const found = await this.builtin.check();
    const state = BUILTIN_STATES[found.state];
    if (!state.usable) return { ok: false, why: found.reason };
    if (!state.disclose) return { ok: true, why: found.reason };
    if (this.builtinDisclosed === null) {
      const info = this.builtin.disclosure(/** @type {'downloadable' | 'downloading'} */ (found.state));
      const ask = /** @type {((d: BuiltinDisclosure) => boolean | Promise<boolean>) | undefined} */ (
        this.options.onDisclose);
      this.builtinDisclosed = ask ? Boolean(await ask(info)) : false;
    }
    return this.builtinDisclosed ? { ok: true, why: found.reason }
      : { ok: false, why: "the browser's own model needs a download, and it was declined" };
  }

  /** What the first in-browser load will cost (HEAD for the exact size, before any byte).
   * @param {ModelEntry} model
   * @returns {Promise<Disclosure>} */
  async disclosure(model) {
    let bytes = model.bytes;
    try {
      const head = await fetch(model.url, { method: 'HEAD', cache: 'no-store' });
      if (head.ok) bytes = Number(head.headers.get('content-length') ?? bytes);
    } catch { /* the manifest's size stands */ }
    const engineBytes = Number(this.manifest?.engine?.bytes ?? 0);
    const { bps, basis } = bandwidth();
    const nav = /** @type {Navigator & {deviceMemory?: number}} */ (navigator);
    const need = model.ram ?? bytes * 2;
    const fitsMemory = nav.deviceMemory ? need <= nav.deviceMemory * 1e9 / 2 : null;
    let fitsStorage = null;
    try {
      const est = await navigator.storage.estimate();
      if (est.quota !== undefined) fitsStorage = bytes <= est.quota - (est.usage ?? 0);
    } catch { /* unknown */ }
    return { model: model.name, bytes, engine_bytes: engineBytes,
      est_seconds: (bytes + engineBytes) / bps, est_basis: basis, fits_memory: fitsMemory,
      fits_storage: fitsStorage, cached: await isCached(model.sha256), sha256: model.sha256,
      license: model.license ?? null, url: model.url };
  }

  /** @param {ModelEntry} model @returns {Promise<boolean>} true when loaded */
  async ensureBrowser(model) {
    if (this.engine.loaded && this.engine.model?.sha256 === model.sha256) return true;
    const cached = await isCached(model.sha256);
    if (!cached) {
      if (this.disclosed === false) return false;
      if (this.disclosed === null) {
        const info = await this.disclosure(model);
        this.disclosed = this.options.onDisclose ? Boolean(await this.options.onDisclose(info)) : false;
        if (!this.disclosed) return false;
      }
      try { await navigator.storage.persist(); } catch { /* best effort */ }
    }
    const loaded = await this.engine.load(model);
    if (loaded.fetched_bytes > 0 && loaded.download_ms > 0) {
      const bps = loaded.fetched_bytes / (loaded.download_ms / 1000);
      localStorage.setItem(BANDWIDTH_KEY, String(Math.round(bps)));
    }
    this.options.onProgress?.({ phase: 'ready', done: model.bytes, total: model.bytes });
    return true;
  }

  /**
   * OpenAI's `chat.completions.create`, answered by the first tier that can.
   * @param {ChatParams} params
   * @returns {Promise<ChatCompletion | ChatStream>}
   */
  async create(params) {
    const controller = new AbortController();
    params.signal?.addEventListener('abort', () => controller.abort(), { once: true });
    if (params.signal?.aborted) controller.abort();
    // Stopping while the in-browser model downloads or loads ends that load too.
    controller.signal.addEventListener('abort', () => this.engine.cancelLoad(), { once: true });
    this.inflight.add(controller);
    const cleanup = () => this.inflight.delete(controller);
    try {
      const stream = await this.route(params, controller);
      if (params.stream) {
        const chunks = stream.chunks;
        stream.chunks = (async function* () {
          try { yield* chunks; } finally { cleanup(); }
        })();
        return stream;
      }
      const reply = await collect(stream);
      cleanup();
      return reply;
    } catch (err) {
      cleanup();
      throw err;
    }
  }

  /** Stop every request in flight. */
  abort() { for (const c of this.inflight) c.abort(); }

  /**
   * @param {ChatParams} params
   * @param {AbortController} controller
   * @returns {Promise<ChatStream>}
   */
  async route(params, controller) {
    const body = { model: params.model ?? 'default', messages: params.messages,
      max_tokens: params.max_tokens, temperature: params.temperature, top_p: params.top_p,
      seed: params.seed, response_format: params.response_format, stream: true };
    const tiers = params.tiers ?? ['local', 'browser', 'remote'];
    if (this.detected.baseUrl && tiers.includes('local')) {
      const headers = params.sensitive ? { 'x-localinfer-sensitive': 'true' } : undefined;
      try {
        return await this.http('local', this.detected.baseUrl, body, headers, controller);
      } catch (err) {
        // Like the Python router: a server that is gone or fails (5xx) before the first
        // token hands the request to the next tier; a client error (4xx) is the answer.
        const failed = err instanceof BackendError && (err.status === undefined || err.status >= 500);
        if (!failed || controller.signal.aborted) throw err;
      }
    }
    /** @type {string[]} why each browser-tier engine did not answer */
    const skipped = [];
    const model = this.browserModel();
    if (this.detected.baseUrl && !tiers.includes('local')) skipped.push('the local server was left out (tiers)');
    for (const name of this.options.browser === false || !tiers.includes('browser') ? [] : this.engines) {
      if (params.sensitive && !ON_DEVICE[name]) continue;
      if (name === 'builtin') {
        const ready = await this.ensureBuiltin();
        if (ready.ok) {
          try {
            return await this.builtinStream(params, controller);
          } catch (err) {
            // Like a failing local server: a session the browser would not create hands
            // the request on; an overflow or a stop is the answer.
            if (!(err instanceof BackendError) || controller.signal.aborted) throw err;
            skipped.push(err.message);
            continue;
          }
        }
        skipped.push(`${BUILTIN_BACKEND}: ${ready.why}`);
      } else if (name === 'wllama') {
        if (model && await this.ensureBrowser(model)) return this.browser(model, params, controller);
        skipped.push(model ? 'the in-browser download was declined' : 'no in-browser engine or model');
      } else {
        skipped.push('webllm: not bundled in this build');
      }
    }
    const remote = tiers.includes('remote') ? this.options.remote : null;
    const why = skipped.join('; ') || 'no in-browser engine or model';
    if (!remote) {
      const start = this.detected.baseUrl && !tiers.includes('local') ? 'no tier answered' : 'no local server answered';
      throw new NoBackend(`${start} and ${why}; start \`localinfer serve\` or Ollama`);
    }
    if (params.sensitive) {
      throw new SensitiveDataBlocked(`a sensitive request is never sent to ${remote.baseUrl}; `
        + `no local tier can answer (${why})`);
    }
    if (!isGranted(remote.baseUrl)) {
      const ok = this.options.onConsent ? Boolean(await this.options.onConsent({
        provider: remote.name ?? new URL(remote.baseUrl).host, url: remote.baseUrl,
        origin: location.origin,
        summary: `your messages (${params.messages.length}, ${JSON.stringify(params.messages).length} characters) would be sent to ${remote.baseUrl}` })) : false;
      if (!ok) throw new ConsentRequired(`${remote.baseUrl} needs your consent before any message is sent to it`);
      grant(remote.baseUrl);
    }
    const headers = remote.apiKey ? { Authorization: `Bearer ${remote.apiKey}` } : undefined;
    return this.http('remote', remote.baseUrl, { ...body, model: params.model ?? remote.model ?? 'default' },
      headers, controller);
  }

  /**
   * @param {Tier} tier
   * @param {string} baseUrl
   * @param {any} body
   * @param {Record<string, string> | undefined} headers
   * @param {AbortController} controller
   * @returns {Promise<ChatStream>}
   */
  async http(tier, baseUrl, body, headers, controller) {
    const response = await postChat(baseUrl, body, { headers, signal: controller.signal });
    const backend = response.headers.get('x-localinfer-backend') ?? new URL(baseUrl).host;
    async function* chunks() {
      try {
        for await (const raw of sseJson(response, controller.signal)) {
          yield /** @type {ChatChunk} */ ({ ...raw, tier, backend });
        }
      } catch (err) {
        // Stopped by the caller: the answer ends where it was, as the engine's does.
        if (!(err instanceof Aborted)) throw err;
      }
    }
    return new ChatStream(tier, backend, chunks(), controller);
  }

  /**
   * @param {ModelEntry} model
   * @param {ChatParams} params
   * @param {AbortController} controller
   * @returns {ChatStream}
   */
  browser(model, params, controller) {
    const engine = this.engine;
    const id = newId('chatcmpl');
    const created = Math.floor(Date.now() / 1000);
    const backend = `wllama:${model.name}`;
    async function* chunks() {
      const pieces = engine.chat({ messages: params.messages, max_tokens: params.max_tokens,
        temperature: params.temperature, top_p: params.top_p, seed: params.seed }, controller.signal);
      while (true) {
        const next = await pieces.next();
        if (next.done) {
          yield /** @type {ChatChunk} */ ({ id, object: 'chat.completion.chunk', created,
            model: model.name, tier: 'browser', backend, usage: next.value.usage,
            timings: next.value.timings,
            choices: [{ index: 0, delta: {}, finish_reason: next.value.finish_reason }] });
          return;
        }
        yield /** @type {ChatChunk} */ ({ id, object: 'chat.completion.chunk', created,
          model: model.name, tier: 'browser', backend,
          choices: [{ index: 0, delta: { content: next.value }, finish_reason: null }] });
      }
    }
    return new ChatStream('browser', backend, chunks(), controller);
  }

  /**
   * The browser's own model: a session is opened here (so a browser that will not create
   * one hands the request on), answered piece by piece, and destroyed when it ends.
   * @param {ChatParams} params
   * @param {AbortController} controller
   * @returns {Promise<ChatStream>}
   */
  async builtinStream(params, controller) {
    const { session, prompt } = await this.builtin.open(params.messages, { signal: controller.signal,
      temperature: params.temperature, onProgress: (p) => this.options.onProgress?.(p) });
    const engine = this.builtin;
    const id = newId('chatcmpl');
    const created = Math.floor(Date.now() / 1000);
    const backend = BUILTIN_BACKEND;
    async function* chunks() {
      try {
        const pieces = engine.stream(session, prompt, { max_tokens: params.max_tokens,
          response_format: params.response_format }, controller.signal);
        while (true) {
          const next = await pieces.next();
          if (next.done) {
            yield /** @type {ChatChunk} */ ({ id, object: 'chat.completion.chunk', created,
              model: backend, tier: 'browser', backend, usage: next.value.usage,
              choices: [{ index: 0, delta: {}, finish_reason: next.value.finish_reason }] });
            return;
          }
          yield /** @type {ChatChunk} */ ({ id, object: 'chat.completion.chunk', created,
            model: backend, tier: 'browser', backend,
            choices: [{ index: 0, delta: { content: next.value }, finish_reason: null }] });
        }
      } finally {
        session.destroy();
      }
    }
    return new ChatStream('browser', backend, chunks(), controller);
  }

  /** Every origin this page (and its engine worker) contacted, from Resource Timing. */
  async origins() {
    const entries = [...ownEntries(), ...(await this.engine.timing()),
      ...(await this.embedder.timing())];
    return byOrigin(entries);
  }
}

/**
 * @param {ChatStream} stream
 * @returns {Promise<ChatCompletion>}
 */
async function collect(stream) {
  let content = '';
  /** @type {string | null} */
  let finish = null;
  /** @type {any} */
  let usage = null;
  let model = '';
  let id = newId('chatcmpl');
  for await (const chunk of stream) {
    id = chunk.id ?? id;
    model = chunk.model ?? model;
    const choice = chunk.choices?.[0];
    content += choice?.delta?.content ?? '';
    finish = choice?.finish_reason ?? finish;
    usage = chunk.usage ?? usage;
  }
  return { id, object: 'chat.completion', created: Math.floor(Date.now() / 1000), model,
    choices: [{ index: 0, message: { role: 'assistant', content }, finish_reason: finish }],
    usage, tier: stream.tier, backend: stream.backend };
}
