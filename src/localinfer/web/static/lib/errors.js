// Errors are values a page can show: each has a stable `code` and a one-line `message`.

export class LocalInferError extends Error {
  /** @param {string} message @param {string} [code] */
  constructor(message, code = 'localinfer_error') {
    super(message);
    this.name = new.target.name;
    /** @type {string} */
    this.code = code;
  }
}

/** No tier can answer: no local server, no in-browser engine, no consented remote. */
export class NoBackend extends LocalInferError {
  /** @param {string} message */
  constructor(message) { super(message, 'no_backend'); }
}

/** A remote endpoint would be used, and the user has not granted it. */
export class ConsentRequired extends LocalInferError {
  /** @param {string} message */
  constructor(message) { super(message, 'consent_required'); }
}

/** `sensitive: true` and only a remote endpoint could answer: it is never asked. */
export class SensitiveDataBlocked extends LocalInferError {
  /** @param {string} message */
  constructor(message) { super(message, 'sensitive_data_blocked'); }
}

/** The user declined the first-load download the disclosure described. */
export class DownloadDeclined extends LocalInferError {
  /** @param {string} message */
  constructor(message) { super(message, 'download_declined'); }
}

/** A downloaded or cached model file does not match its sha256. */
export class IntegrityError extends LocalInferError {
  /** @param {string} message */
  constructor(message) { super(message, 'integrity_error'); }
}

/** The in-browser engine's worker died; the next call starts a fresh one. */
export class EngineCrashed extends LocalInferError {
  /** @param {string} message */
  constructor(message) { super(message, 'engine_crashed'); }
}

/** A backend (gateway, local server, remote) failed or answered an error. */
export class BackendError extends LocalInferError {
  /** @param {string} message @param {number} [status] */
  constructor(message, status) {
    super(message, 'backend_error');
    /** @type {number | undefined} */
    this.status = status;
  }
}

/** The caller aborted the request. */
export class Aborted extends LocalInferError {
  constructor() { super('aborted', 'aborted'); }
}

/** The messages do not fit the model's context window (as the Python library's
 * ContextLengthExceeded): the caller's to shorten; no other engine is tried. */
export class ContextLengthExceeded extends LocalInferError {
  /**
   * @param {string} backend
   * @param {number | null} tokens what the messages came to, when the engine said
   * @param {number | null} limit the context window, when the engine said
   */
  constructor(backend, tokens, limit) {
    const counts = tokens && limit
      ? `maximum context length is ${limit} tokens, but the messages came to ${tokens} tokens`
      : 'context window is too small for these messages';
    super(`${backend}: this model's ${counts}; shorten the messages`, 'context_length_exceeded');
    /** @type {number | null} */
    this.tokens = tokens;
    /** @type {number | null} */
    this.limit = limit;
  }
}
