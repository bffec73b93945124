// The page's side of the in-browser engine: one module worker (engine-worker.js), messages
// in and out. A worker that dies becomes an EngineCrashed error for whatever was running;
// the next call starts a fresh worker (the model then comes from the cache).
import { Aborted, EngineCrashed, LocalInferError } from './errors.js';

/** @typedef {import('./types.js').ModelEntry} ModelEntry */
/** @typedef {import('./types.js').Progress} Progress */

/** @typedef {import('./protocol.js').EngineLoaded} Loaded */
/** @typedef {import('./protocol.js').EngineDone} Done */
/** @typedef {import('./protocol.js').EngineReply} EngineReply */

/**
 * @typedef {{kind: 'token', text: string} | {kind: 'done', done: Done} | {kind: 'error', error: Error}} StreamEvent
 */

/** The one way a message reaches the engine worker. @param {Worker} worker
 * @param {import('./protocol.js').EngineRequest} msg */
function send(worker, msg) { worker.postMessage(msg); }

/** Threads for the engine: one on two cores or fewer (measured faster and smoother), else
 * cores - 1; more than one needs cross-origin isolation (COOP/COEP), else wllama uses one.
 * @returns {number} */
export function defaultThreads() {
  const cores = navigator.hardwareConcurrency || 1;
  return cores <= 2 ? 1 : cores - 1;
}

export class BrowserEngine {
  /**
   * @param {{workerUrl: string, engineBase: string, threads?: number}} opts
   */
  constructor(opts) {
    this.workerUrl = opts.workerUrl;
    this.engineBase = opts.engineBase;
    this.threads = opts.threads ?? defaultThreads();
    /** @type {Worker | null} */
    this.worker = null;
    /** @type {Loaded | null} */
    this.loaded = null;
    /** @type {ModelEntry | null} */
    this.model = null;
    /** @type {Promise<Loaded> | null} */
    this.loading = null;
    this.nextId = 1;
    /** @type {Map<number, (event: StreamEvent) => void>} */
    this.streams = new Map();
    /** @type {((loaded: Loaded) => void) | null} */
    this.onLoaded = null;
    /** @type {((error: Error) => void) | null} */
    this.onLoadError = null;
    /** @type {((p: Progress) => void) | null} */
    this.onProgress = null;
    /** @type {((entries: import('./timing.js').TimingEntry[]) => void)[]} */
    this.timingWaiters = [];
    /** @type {import('./timing.js').TimingEntry[]} entries of workers that are gone */
    this.pastTiming = [];
    this.crashes = 0;
  }

  /** @returns {Worker} */
  spawn() {
    if (this.worker) return this.worker;
    const worker = new Worker(this.workerUrl, { type: 'module', name: 'localinfer-engine' });
    worker.onmessage = (/** @type {MessageEvent<EngineReply>} */ event) => this.receive(event.data);
    worker.onerror = (event) => {
      event.preventDefault();
      this.die(new EngineCrashed(`the engine worker crashed: ${event.message || 'unknown error'}`));
    };
    worker.onmessageerror = () => this.die(new EngineCrashed('the engine worker sent an unreadable message'));
    this.worker = worker;
    return worker;
  }

  /** @param {Error} error */
  die(error) {
    this.crashes += 1;
    this.worker?.terminate();
    this.worker = null;
    this.loaded = null;
    this.loading = null;
    this.onLoadError?.(error);
    for (const deliver of this.streams.values()) deliver({ kind: 'error', error });
    this.streams.clear();
    for (const w of this.timingWaiters) w([]);
    this.timingWaiters = [];
  }

  /** @param {EngineReply} msg */
  receive(msg) {
    if (msg.op === 'progress') this.onProgress?.({ phase: msg.phase, done: msg.done, total: msg.total });
    else if (msg.op === 'loaded') this.onLoaded?.(msg);
    else if (msg.op === 'token') this.streams.get(msg.id)?.({ kind: 'token', text: msg.text });
    else if (msg.op === 'done') {
      this.streams.get(msg.id)?.({ kind: 'done', done: msg });
      this.streams.delete(msg.id);
    } else if (msg.op === 'error') {
      const error = new LocalInferError(msg.message, msg.code);
      if (msg.id === undefined) this.onLoadError?.(error);
      else {
        this.streams.get(msg.id)?.({ kind: 'error', error });
        this.streams.delete(msg.id);
      }
    } else if (msg.op === 'fatal') {
      this.die(new EngineCrashed(msg.message));
    } else if (msg.op === 'timing') {
      const waiter = this.timingWaiters.shift();
      waiter?.(msg.entries);
    }
  }

  /**
   * Load a model (from the cache when it is there; else download, verify, store).
   * @param {ModelEntry} model
   * @returns {Promise<Loaded>}
   */
  load(model) {
    if (this.loaded && this.model?.sha256 === model.sha256) return Promise.resolve(this.loaded);
    if (this.loading) return this.loading;
    this.model = model;
    const worker = this.spawn();
    this.loading = new Promise((resolve, reject) => {
      this.onLoaded = (loaded) => { this.loaded = loaded; this.loading = null; resolve(loaded); };
      this.onLoadError = (error) => { this.loading = null; reject(error); };
    });
    send(worker, { op: 'load', model: { name: model.name, url: model.url,
      sha256: model.sha256, bytes: model.bytes }, engineBase: this.engineBase,
    threads: this.threads });
    return this.loading;
  }

  /**
   * Stream an answer: yields text pieces, returns the summary.
   * @param {import('./protocol.js').EngineChatRequest} req
   * @param {AbortSignal} [signal]
   * @returns {AsyncGenerator<string, Done>}
   */
  async *chat(req, signal) {
    if (!this.model) throw new LocalInferError('no model chosen', 'engine_not_loaded');
    await this.load(this.model);
    if (signal?.aborted) throw new Aborted();
    const worker = this.spawn();
    const id = this.nextId++;
    /** @type {StreamEvent[]} */
    const queue = [];
    /** @type {(() => void) | null} */
    let wake = null;
    this.streams.set(id, (event) => { queue.push(event); wake?.(); });
    const onAbort = () => send(worker, { op: 'abort', id });
    signal?.addEventListener('abort', onAbort, { once: true });
    send(worker, { op: 'chat', id, messages: req.messages, max_tokens: req.max_tokens,
      temperature: req.temperature, top_p: req.top_p, seed: req.seed });
    try {
      while (true) {
        if (queue.length === 0) await new Promise((r) => { wake = () => r(undefined); });
        wake = null;
        const event = /** @type {StreamEvent} */ (queue.shift());
        if (event.kind === 'token') yield event.text;
        else if (event.kind === 'error') throw event.error;
        else return event.done;
      }
    } finally {
      signal?.removeEventListener('abort', onAbort);
      if (this.streams.has(id)) { onAbort(); this.streams.delete(id); }
    }
  }

  /** Stop a first download or load in progress: the worker (and its fetch) is ended; the
   * load fails with Aborted; nothing half-downloaded is kept (the cache only takes a file
   * whose sha256 matched). @returns {boolean} true if a load was stopped */
  cancelLoad() {
    if (!this.loading) return false;
    const reject = this.onLoadError;
    this.worker?.terminate();
    this.worker = null;
    this.loaded = null;
    this.loading = null;
    reject?.(new Aborted());
    for (const w of this.timingWaiters) w([]);
    this.timingWaiters = [];
    return true;
  }

  /** @returns {Promise<import('./timing.js').TimingEntry[]>} the worker's Resource Timing */
  async timing() {
    if (!this.worker) return [];
    const worker = this.worker;
    return new Promise((resolve) => {
      this.timingWaiters.push(resolve);
      send(worker, { op: 'timing' });
    });
  }

  /** Tests and demos: make the worker fail the way a crash does. */
  crashForTest() { if (this.worker) send(this.worker, { op: 'crash' }); }
}
