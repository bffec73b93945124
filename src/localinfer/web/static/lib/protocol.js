// The messages between the page and its three workers, declared once (no runtime code).
// Both sides name these types: the page's side (lib/engine.js, lib/embeddings.js,
// lib/sandbox.js) for what it posts and receives, each worker for the other direction.
// Every message is discriminated by `op`, so a misspelled op, or a field an op does not
// carry, fails `tsc`.

/** @typedef {import('./types.js').ChatMessage} ChatMessage */
/** @typedef {import('./types.js').Usage} Usage */
/** @typedef {import('./timing.js').TimingEntry} TimingEntry */

/**
 * @typedef {{op: 'error', id?: number, message: string, code: string}} WorkerError a
 *   failure: with the id of the call it ends, or without one for a load
 * @typedef {{op: 'timing', entries: TimingEntry[]}} TimingReply the worker's own
 *   Resource Timing entries, for "where did my data go"
 */

// The engine worker (engine-worker.js, wllama).

/**
 * @typedef {object} EngineLoaded
 * @property {boolean} cached
 * @property {number} fetched_bytes
 * @property {number} download_ms
 * @property {boolean} verified
 * @property {number} load_ms
 * @property {number} threads
 * @property {boolean} multithread
 */

/**
 * @typedef {object} EngineDone
 * @property {boolean} aborted
 * @property {string} finish_reason
 * @property {Usage} usage
 * @property {{first_token_ms: number | null, template_ms: number, prompt_tokens: number, decode_ms: number, tokens: number}} timings
 */

/**
 * @typedef {object} EngineChatRequest
 * @property {ChatMessage[]} messages
 * @property {number} [max_tokens]
 * @property {number} [temperature]
 * @property {number} [top_p]
 * @property {number} [seed]
 */

/**
 * @typedef {{name: string, url: string, sha256: string, bytes: number}} EngineModel
 */

/**
 * Page → engine worker.
 * @typedef {{op: 'load', model: EngineModel, engineBase: string, threads: number}
 *   | ({op: 'chat', id: number} & EngineChatRequest)
 *   | {op: 'abort', id: number}
 *   | {op: 'timing'}
 *   | {op: 'crash'}} EngineRequest `crash`: tests, a simulated crash
 */

/**
 * Engine worker → page.
 * @typedef {{op: 'ready'}
 *   | {op: 'progress', phase: 'download' | 'verify' | 'cached' | 'load', done: number, total: number}
 *   | ({op: 'loaded'} & EngineLoaded)
 *   | {op: 'token', id: number, text: string}
 *   | ({op: 'done', id: number} & EngineDone)
 *   | WorkerError
 *   | {op: 'fatal', message: string}
 *   | TimingReply} EngineReply `fatal`: wllama's own worker died; this one is closing
 */

// The embeddings worker (embeddings-worker.js, transformers.js).

/**
 * @typedef {object} EmbeddingsLoaded
 * @property {string} model
 * @property {number} dim
 * @property {boolean} cached
 * @property {number} fetched_bytes
 * @property {number} bytes
 * @property {number} load_ms
 * @property {number} threads
 */

/**
 * embeddings/manifest.json, read by both sides: the model folder (`base`, relative to the
 * manifest) and each file's size and sha256; `problem` says why no model is listed.
 * @typedef {{models?: EmbedManifestModel[], problem?: string}} EmbedManifest
 *
 * @typedef {object} EmbedManifestModel
 * @property {string} id
 * @property {string} base
 * @property {number} dim
 * @property {number} bytes
 * @property {string | null} license
 * @property {{path: string, bytes: number, sha256: string}[]} files
 */

/**
 * Page → embeddings worker.
 * @typedef {{op: 'load', manifestUrl: string, vendorBase: string, threads: number}
 *   | {op: 'embed', id: number, texts: string[]}
 *   | {op: 'timing'}} EmbeddingsRequest
 */

/**
 * Embeddings worker → page. `data` holds `texts.length` rows of `dim`, in input order.
 * @typedef {{op: 'progress', phase: 'download' | 'verify' | 'cached' | 'load', done: number, total: number}
 *   | {op: 'progress', phase: 'embed', id: number, done: number, total: number}
 *   | ({op: 'loaded'} & EmbeddingsLoaded)
 *   | {op: 'vectors', id: number, dim: number, data: Float32Array}
 *   | WorkerError
 *   | TimingReply} EmbeddingsReply
 */

// The sandbox worker (sandbox-worker.js, WASI guests).

/**
 * @typedef {object} SandboxRun one guest run, as lib/sandbox.js prepared it
 * @property {number} id
 * @property {string[]} argv
 * @property {string[]} env `NAME=value`
 * @property {Record<string, Uint8Array>} files put in /work
 * @property {Uint8Array} stdin
 * @property {number} outputCap bytes of stdout (and of stderr) kept
 * @property {number} disk bytes the guest's files may grow by
 */

/**
 * @typedef {object} SandboxDone
 * @property {number} id
 * @property {number | null} exitCode
 * @property {string | null} trap
 * @property {Record<string, Uint8Array>} files new or changed under /work
 * @property {number} memoryBytes
 * @property {boolean} truncated
 * @property {boolean} overDisk
 */

/**
 * Page → sandbox worker.
 * @typedef {{op: 'module', runtime: string, module: WebAssembly.Module}
 *   | ({op: 'run'} & SandboxRun)
 *   | {op: 'network'}} SandboxRequest
 */

/**
 * Sandbox worker → page (stdout is fd 1, stderr fd 2, posted as written).
 * @typedef {{op: 'out', id: number, fd: 1 | 2, data: Uint8Array}
 *   | {op: 'network', state: 'blocked' | 'open'}
 *   | ({op: 'done'} & SandboxDone)} SandboxReply
 */

export {};
