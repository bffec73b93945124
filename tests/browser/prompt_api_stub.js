// A stand-in for the browser's Prompt API (`LanguageModel`), injected by the tests with
// Playwright's `add_init_script` before any page script runs. It follows the published API
// shape (the IDL at webmachinelearning.github.io/prompt-api and MDN's LanguageModel pages):
// an EventTarget subclass that cannot be constructed; static `availability(options)` and
// `create(options)` (`params()` only when configured: Chromium exposes it to extensions
// only); sessions with `prompt`, `promptStreaming` (a ReadableStream of text deltas),
// `append`, `measureContextUsage`, `clone`, `destroy`, `contextUsage`, `contextWindow` and
// `oncontextoverflow`. `create({monitor})` fires `downloadprogress` ProgressEvents while it
// "downloads"; `signal` aborts create and prompts with an AbortError; a prompt that cannot
// fit the window rejects with a QuotaExceededError (with `requested` and `quota`), and one
// that fits only by dropping earlier turns drops them and fires `contextoverflow`.
// tests/browser/test_builtin_engine.py checks this shape against Chromium's own LanguageModel.
//
// Configuration: `window.__PROMPT_API_STUB__` (set before this script), read at each call
// through `window.__promptApiStub.config`; what the page did is in `window.__promptApiStub.log`.
(() => {
  const config = Object.assign({
    availability: 'available',       // or 'downloadable' | 'downloading' | 'unavailable'
    contextWindow: 4096,             // tokens (a token here is a word)
    pieces: ['Hello', ' from', ' the', ' browser\'s', ' own', ' model.'],
    pieceDelayMs: 0,
    downloadSteps: [0, 0.5, 1],      // `loaded` of each downloadprogress event
    downloadTotal: 1,                // `total` (current Chrome: 1, a fraction)
    downloadDelayMs: 20,
    createError: null,               // {name, message}: create() rejects with this DOMException
    params: null,                    // {defaultTopK, maxTopK, defaultTemperature, maxTemperature}
  }, globalThis.__PROMPT_API_STUB__ ?? {});
  const log = { availability: 0, create: [], prompts: [], sessions: 0, destroyed: 0,
    aborted: 0, cancelled: 0, overflows: 0, downloads: 0 };
  const KEY = Symbol('stub');
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  const tokens = (text) => String(text).split(/\s+/).filter(Boolean).length;
  const tokensOf = (input) => typeof input === 'string' ? tokens(input)
    : input.reduce((n, m) => n + tokens(typeof m.content === 'string' ? m.content : ''), 0);
  const aborted = (signal) => signal.reason ?? new DOMException('The operation was aborted.', 'AbortError');
  const quota = (requested, limit) => {
    const e = new DOMException(`The input is too large: ${requested} tokens, the window is ${limit}.`,
      'QuotaExceededError');
    Object.defineProperties(e, { requested: { value: requested }, quota: { value: limit } });
    return e;
  };
  /** An answer that follows a JSON schema (what responseConstraint promises). */
  const fromSchema = (schema) => {
    if (schema?.type === 'object' || schema?.properties) {
      const out = {};
      for (const [k, v] of Object.entries(schema.properties ?? {})) out[k] = fromSchema(v);
      return out;
    }
    if (schema?.type === 'array') return [fromSchema(schema.items)];
    if (schema?.type === 'number' || schema?.type === 'integer') return 1;
    if (schema?.type === 'boolean') return true;
    if (schema?.enum) return schema.enum[0];
    return 'stub';
  };

  class LanguageModel extends EventTarget {
    #usage = 0;
    #systemUsage = 0;
    #destroyed = false;
    #onoverflow = null;

    constructor(key, initialPrompts = []) {
      if (key !== KEY) throw new TypeError('Illegal constructor');
      super();
      const system = initialPrompts.filter((m) => m.role === 'system');
      this.#systemUsage = tokensOf(system);
      this.#usage = tokensOf(initialPrompts);
    }

    static async availability(options = {}) {
      log.availability += 1;
      return config.availability;
    }

    static async create(options = {}) {
      const { signal, monitor, initialPrompts = [] } = options;
      log.create.push({ initialPrompts, monitor: typeof monitor, signal: Boolean(signal),
        temperature: options.temperature ?? null, topK: options.topK ?? null,
        expectedInputs: options.expectedInputs ?? null, at: log.prompts.length });
      if (signal?.aborted) throw aborted(signal);
      if (config.createError) throw new DOMException(config.createError.message, config.createError.name);
      if (config.availability === 'unavailable') {
        throw new DOMException('The model is not available.', 'NotSupportedError');
      }
      if (initialPrompts.some((m, i) => m.role === 'system' && i > 0)) {
        throw new TypeError('a system prompt may only come first');
      }
      if (config.availability !== 'available') {
        const target = new EventTarget();
        monitor?.(target);
        for (const loaded of config.downloadSteps) {
          await sleep(config.downloadDelayMs);
          if (signal?.aborted) throw aborted(signal);
          target.dispatchEvent(new ProgressEvent('downloadprogress',
            { loaded: loaded * config.downloadTotal, total: config.downloadTotal }));
        }
        log.downloads += 1;
        config.availability = 'available';
      }
      const need = tokensOf(initialPrompts);
      if (need > config.contextWindow) throw quota(need, config.contextWindow);
      log.sessions += 1;
      return new LanguageModel(KEY, initialPrompts);
    }

    get contextUsage() { return this.#usage; }
    get contextWindow() { return config.contextWindow; }
    get oncontextoverflow() { return this.#onoverflow; }
    set oncontextoverflow(handler) { this.#onoverflow = handler; }

    #alive() {
      if (this.#destroyed) throw new DOMException('The session was destroyed.', 'InvalidStateError');
    }

    /** Room for `input`: a QuotaExceededError, or earlier turns dropped and the event. */
    #fit(input) {
      const need = tokensOf(input);
      if (need > config.contextWindow - this.#systemUsage) throw quota(need, config.contextWindow - this.#systemUsage);
      if (this.#usage + need > config.contextWindow) {
        this.#usage = this.#systemUsage;
        log.overflows += 1;
        const event = new Event('contextoverflow');
        this.dispatchEvent(event);
        this.#onoverflow?.call(this, event);
      }
      this.#usage += need;
    }

    async prompt(input, options = {}) {
      const reader = this.promptStreaming(input, options).getReader();
      let text = '';
      while (true) {
        const { done, value } = await reader.read();
        if (done) return text;
        text += value;
      }
    }

    promptStreaming(input, options = {}) {
      this.#alive();
      const { signal, responseConstraint } = options;
      log.prompts.push({ input, responseConstraint: responseConstraint ?? null, signal: Boolean(signal) });
      if (Array.isArray(input) && input.some((m) => m.role === 'system')) {
        throw new DOMException('A system prompt may only be given to create().', 'NotSupportedError');
      }
      const pieces = responseConstraint
        ? (() => { const s = JSON.stringify(fromSchema(responseConstraint)); const h = Math.ceil(s.length / 2);
          return [s.slice(0, h), s.slice(h)]; })()
        : [...config.pieces];
      let cancelled = false;
      const session = this;
      return new ReadableStream({
        async start(controller) {
          let done = false;
          const onAbort = () => {
            if (done) return;
            done = true;
            log.aborted += 1;
            controller.error(aborted(signal));
          };
          if (signal?.aborted) { onAbort(); return; }
          signal?.addEventListener('abort', onAbort, { once: true });
          try {
            session.#fit(input);
          } catch (err) {
            done = true;
            controller.error(err);
            return;
          }
          for (const piece of pieces) {
            if (config.pieceDelayMs) await sleep(config.pieceDelayMs);
            else await Promise.resolve();
            if (done || cancelled) return;
            controller.enqueue(piece);
            session.#usage += tokens(piece);
          }
          done = true;
          signal?.removeEventListener('abort', onAbort);
          controller.close();
        },
        cancel() { cancelled = true; log.cancelled += 1; },
      });
    }

    async append(input, options = {}) {
      this.#alive();
      if (options.signal?.aborted) throw aborted(options.signal);
      this.#fit(input);
    }

    async measureContextUsage(input, options = {}) {
      this.#alive();
      return tokensOf(input);
    }

    async clone(options = {}) {
      this.#alive();
      const copy = new LanguageModel(KEY, []);
      copy.#usage = this.#usage;
      copy.#systemUsage = this.#systemUsage;
      log.sessions += 1;
      return copy;
    }

    destroy() {
      if (!this.#destroyed) log.destroyed += 1;
      this.#destroyed = true;
    }
  }

  if (config.params) {
    Object.defineProperty(LanguageModel, 'params', { configurable: true, writable: true,
      value: async function params() { return { ...config.params }; } });
  }
  Object.defineProperty(globalThis, 'LanguageModel', { value: LanguageModel, writable: true,
    configurable: true, enumerable: false });
  globalThis.__promptApiStub = { config, log };
})();
