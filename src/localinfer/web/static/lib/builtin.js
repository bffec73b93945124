// The browser's own model through the Prompt API (`LanguageModel`; Chrome's Gemini Nano,
// Edge's Phi-4-mini): no download into the page, the browser keeps the model itself.
// `availability()` decides: `available` is used at once; `downloadable`/`downloading` only
// after the page's `onDisclose` said yes (the browser then downloads, reporting
// `downloadprogress` to `create({monitor})`); `unavailable`, or no `LanguageModel` global,
// leaves the request to the next engine. One session per request (OpenAI's calls are
// stateless): the system and earlier messages go in `initialPrompts`, the last user
// message is the prompt; the session is destroyed when the answer ends.
import { Aborted, BackendError, ContextLengthExceeded } from './errors.js';

/** @typedef {import('./types.js').ChatMessage} ChatMessage */
/** @typedef {import('./types.js').ResponseFormat} ResponseFormat */
/** @typedef {import('./types.js').Progress} Progress */
/** @typedef {import('./types.js').Usage} Usage */
/** @typedef {import('./types.js').BuiltinDisclosure} BuiltinDisclosure */
/** @typedef {import('./types.js').LanguageModelStatic} LanguageModelStatic */
/** @typedef {import('./types.js').LanguageModelSession} LanguageModelSession */
/** @typedef {import('./types.js').LanguageModelMessage} LanguageModelMessage */
/** @typedef {import('./types.js').LanguageModelPrompt} LanguageModelPrompt */
/** @typedef {import('./types.js').LanguageModelCreateOptions} LanguageModelCreateOptions */

export const BACKEND = 'chrome-builtin';
export const UNKNOWN_SIZE = 'unknown, managed by the browser';

/** @typedef {import('./types.js').LanguageModelAvailability | 'absent'} BuiltinState */

/**
 * What each answer of `availability()` means for the page.
 * @type {Record<BuiltinState, {usable: boolean, disclose: boolean, reason: string}>}
 */
export const STATES = {
  available: { usable: true, disclose: false, reason: 'the browser has its model ready' },
  downloadable: { usable: true, disclose: true,
    reason: 'the browser can download its model (asked through onDisclose first)' },
  downloading: { usable: true, disclose: true,
    reason: 'the browser is downloading its model (asked through onDisclose first)' },
  unavailable: { usable: false, disclose: false,
    reason: 'the browser says its model is unavailable on this device' },
  absent: { usable: false, disclose: false, reason: 'this browser has no Prompt API (LanguageModel)' },
};

/**
 * OpenAI's `response_format` as a Prompt API `responseConstraint` (a JSON schema).
 * @type {Record<string, (f: any) => object | undefined>}
 */
const CONSTRAINTS = {
  text: () => undefined,
  json_object: () => ({ type: 'object' }),
  json_schema: (f) => f.json_schema?.schema,
};

/**
 * @typedef {object} BuiltinCheck
 * @property {BuiltinState} state
 * @property {string} reason
 */

/**
 * @typedef {object} BuiltinDone
 * @property {'stop' | 'length'} finish_reason
 * @property {Usage} usage as the browser counts tokens (`contextUsage`), else pieces streamed
 */

/**
 * OpenAI messages as the Prompt API wants them: every system message first (it allows a
 * system role only there), earlier turns in order, and the last user message as the prompt
 * (with any assistant message after it continuing the answer, `prefix: true`).
 * @param {ChatMessage[]} messages
 * @returns {{initialPrompts: LanguageModelMessage[], prompt: LanguageModelPrompt}}
 */
export function toPrompts(messages) {
  const system = messages.filter((m) => m.role === 'system').map((m) => m.content);
  const turns = messages.filter((m) => m.role !== 'system');
  let last = turns.length - 1;
  while (last >= 0 && turns[last].role !== 'user') last -= 1;
  /** @type {LanguageModelMessage[]} */
  const initialPrompts = system.length ? [{ role: 'system', content: system.join('\n\n') }] : [];
  for (const m of turns.slice(0, Math.max(last, 0))) initialPrompts.push({ role: m.role, content: m.content });
  if (last < 0) return { initialPrompts, prompt: '' };
  const tail = turns.slice(last + 1);
  if (tail.length === 0) return { initialPrompts, prompt: turns[last].content };
  /** @type {LanguageModelMessage[]} */
  const prompt = [{ role: 'user', content: turns[last].content },
    ...tail.map((m) => ({ role: m.role, content: m.content }))];
  prompt[prompt.length - 1].prefix = prompt[prompt.length - 1].role === 'assistant';
  return { initialPrompts, prompt };
}

/**
 * A DOMException (or anything) from the Prompt API as one of our errors.
 * @param {unknown} err
 * @param {AbortSignal | undefined} signal
 * @param {{tokens?: number | null, limit?: number | null}} [context]
 * @returns {Error}
 */
export function translate(err, signal, context = {}) {
  const e = /** @type {any} */ (err);
  if (signal?.aborted || e?.name === 'AbortError') return new Aborted();
  if (e?.name === 'QuotaExceededError') {
    const tokens = typeof e.requested === 'number' ? e.requested : context.tokens ?? null;
    const limit = typeof e.quota === 'number' ? e.quota : context.limit ?? null;
    return new ContextLengthExceeded(BACKEND, tokens, limit);
  }
  return new BackendError(`${BACKEND}: ${e?.name ?? 'Error'}: ${e?.message ?? String(err)}`);
}

/** @param {unknown} n @returns {number | null} */
function count(n) { return typeof n === 'number' && Number.isFinite(n) ? n : null; }

export class BuiltinEngine {
  /**
   * @param {{api?: () => LanguageModelStatic | undefined,
   *   options?: Pick<LanguageModelCreateOptions, 'expectedInputs' | 'expectedOutputs'>}} [opts]
   *   `api`: where the `LanguageModel` global is (looked up at each call); `options`:
   *   passed to `availability()` and `create()` (e.g. the languages a page expects)
   */
  constructor(opts = {}) {
    /** @type {() => LanguageModelStatic | undefined} */
    this.api = opts.api ?? (() => /** @type {any} */ (globalThis).LanguageModel);
    this.options = opts.options ?? {};
    /** @type {number | null} the model's size, when a `downloadprogress` event gave bytes */
    this.bytes = null;
    /** @type {BuiltinCheck | null} the last answer of `check()` */
    this.last = null;
  }

  /** What the browser says now (asked each time: a download may have finished).
   * @returns {Promise<BuiltinCheck>} */
  async check() {
    const api = this.api();
    /** @type {BuiltinCheck} */
    let found;
    if (!api || typeof api.availability !== 'function') {
      found = { state: 'absent', reason: STATES.absent.reason };
    } else {
      try {
        const state = /** @type {unknown} */ (await api.availability(this.options));
        found = typeof state === 'string' && state in STATES && state !== 'absent'
          ? { state: /** @type {BuiltinState} */ (state), reason: STATES[/** @type {BuiltinState} */ (state)].reason }
          : { state: 'unavailable', reason: `the browser answered availability() with ${JSON.stringify(state)}` };
      } catch (err) {
        const e = /** @type {any} */ (err);
        found = { state: 'unavailable', reason: `availability() failed: ${e?.name ?? 'Error'}: ${e?.message ?? err}` };
      }
    }
    this.last = found;
    return found;
  }

  /** @param {'downloadable' | 'downloading'} state @returns {BuiltinDisclosure} */
  disclosure(state) {
    return { kind: 'builtin', model: BACKEND, state, bytes: this.bytes,
      size: this.bytes ? `${this.bytes} bytes (as the browser reported it)` : UNKNOWN_SIZE,
      managed_by: 'browser' };
  }

  /**
   * Open a session holding the conversation so far (the browser downloads its model here
   * when it has to, reporting progress).
   * @param {ChatMessage[]} messages
   * @param {{signal?: AbortSignal, temperature?: number, onProgress?: (p: Progress) => void}} opts
   * @returns {Promise<{session: LanguageModelSession, prompt: LanguageModelPrompt}>}
   */
  async open(messages, opts) {
    const api = this.api();
    if (!api) throw new BackendError(`${BACKEND}: ${STATES.absent.reason}`);
    const { initialPrompts, prompt } = toPrompts(messages);
    /** @type {LanguageModelCreateOptions} */
    const create = { ...this.options, initialPrompts, signal: opts.signal,
      monitor: (m) => m.addEventListener('downloadprogress', (event) => {
        const e = /** @type {ProgressEvent} */ (event);
        // Current Chrome reports a fraction of 1; a total above 1 is a size in bytes.
        if (e.total > 1) this.bytes = e.total;
        opts.onProgress?.({ phase: 'download', done: e.loaded, total: e.total, kind: 'builtin' });
      }) };
    // Sampling is settable only where the browser publishes its limits (`params()`, in
    // extensions); elsewhere the browser's defaults hold. No top_p, seed or max_tokens.
    if (typeof api.params === 'function') {
      try {
        const p = await api.params();
        if (p) {
          create.topK = p.defaultTopK;
          create.temperature = Math.min(opts.temperature ?? p.defaultTemperature, p.maxTemperature);
        }
      } catch { /* the defaults hold */ }
    }
    try {
      return { session: await api.create(create), prompt };
    } catch (err) {
      throw translate(err, opts.signal);
    }
  }

  /**
   * Stream the answer to `prompt` in `session`: yields text pieces, returns the summary.
   * `max_tokens` counts streamed pieces (the Prompt API has no limit of its own). A
   * context overflow is ContextLengthExceeded before the first piece, `length` after it.
   * @param {LanguageModelSession} session
   * @param {LanguageModelPrompt} prompt
   * @param {{max_tokens?: number, response_format?: ResponseFormat}} req
   * @param {AbortSignal} [signal] the caller's: the answer ends where it was
   * @returns {AsyncGenerator<string, BuiltinDone>}
   */
  async *stream(session, prompt, req, signal) {
    const stop = new AbortController();
    const onAbort = () => stop.abort();
    signal?.addEventListener('abort', onAbort, { once: true });
    if (signal?.aborted) stop.abort();
    let overflowed = false;
    let capped = false;
    const onOverflow = () => { overflowed = true; stop.abort(); };
    session.addEventListener('contextoverflow', onOverflow);
    const format = req.response_format;
    const responseConstraint = format ? CONSTRAINTS[format.type]?.(format) : undefined;
    const options = responseConstraint ? { signal: stop.signal, responseConstraint } : { signal: stop.signal };
    const before = count(session.contextUsage);
    const limit = count(session.contextWindow);
    /** @type {number | null} */
    let measured = null;
    let pieces = 0;
    /** @type {'stop' | 'length'} */
    let finish = 'stop';
    /** @type {ReadableStreamDefaultReader<string> | null} */
    let reader = null;
    try {
      if (typeof session.measureContextUsage === 'function') {
        try { measured = count(await session.measureContextUsage(prompt, options)); } catch { /* unknown */ }
      }
      const tokens = before !== null && measured !== null ? before + measured : null;
      try {
        reader = session.promptStreaming(prompt, options).getReader();
      } catch (err) {
        throw translate(err, signal, { tokens, limit });
      }
      while (true) {
        /** @type {ReadableStreamReadResult<string>} */
        let next;
        try {
          next = await reader.read();
        } catch (err) {
          if (overflowed && pieces === 0) throw new ContextLengthExceeded(BACKEND, tokens, limit);
          if (overflowed || capped) { finish = 'length'; break; }
          if (signal?.aborted) break; // stopped by the caller: the answer ends where it was
          throw translate(err, signal, { tokens, limit });
        }
        if (next.done) break;
        if (overflowed) {
          if (pieces === 0) throw new ContextLengthExceeded(BACKEND, tokens, limit);
          finish = 'length';
          break;
        }
        if (!next.value) continue;
        pieces += 1;
        yield next.value;
        if (req.max_tokens !== undefined && pieces >= req.max_tokens) {
          capped = true;
          finish = 'length';
          stop.abort();
          break;
        }
      }
      if (overflowed && pieces === 0) throw new ContextLengthExceeded(BACKEND, tokens, limit);
      const after = count(session.contextUsage);
      const promptTokens = tokens ?? before ?? 0;
      const completion = after !== null && after > promptTokens && tokens !== null ? after - promptTokens : pieces;
      return { finish_reason: finish, usage: { prompt_tokens: promptTokens, completion_tokens: completion,
        total_tokens: promptTokens + completion } };
    } finally {
      signal?.removeEventListener('abort', onAbort);
      session.removeEventListener('contextoverflow', onOverflow);
      if (reader) reader.cancel().catch(() => {});
      stop.abort(); // a consumer that left early stops the browser generating
    }
  }
}
