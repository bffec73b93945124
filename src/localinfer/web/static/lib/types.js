// Shared JSDoc types (no runtime code). OpenAI's shapes, plus where each answer came from.

/** @typedef {'local' | 'browser' | 'remote'} Tier */

/**
 * @typedef {object} ChatMessage
 * @property {'system' | 'user' | 'assistant'} role
 * @property {string} content
 */

/**
 * @typedef {object} ChatParams
 * @property {ChatMessage[]} messages
 * @property {string} [model]
 * @property {boolean} [stream]
 * @property {number} [max_tokens]
 * @property {number} [temperature]
 * @property {number} [top_p]
 * @property {number} [seed]
 * @property {boolean} [sensitive] never sent to a remote endpoint
 * @property {AbortSignal} [signal]
 */

/**
 * @typedef {object} Usage
 * @property {number} prompt_tokens
 * @property {number} completion_tokens
 * @property {number} total_tokens
 */

/**
 * @typedef {object} ChatCompletion
 * @property {string} id
 * @property {'chat.completion'} object
 * @property {number} created
 * @property {string} model
 * @property {{index: number, message: ChatMessage, finish_reason: string | null}[]} choices
 * @property {Usage | null} usage
 * @property {Tier} tier
 * @property {string} backend
 */

/**
 * @typedef {object} ChatChunk
 * @property {string} id
 * @property {'chat.completion.chunk'} object
 * @property {number} created
 * @property {string} model
 * @property {{index: number, delta: {role?: string, content?: string}, finish_reason: string | null}[]} choices
 * @property {Usage | null} [usage]
 * @property {Tier} tier
 * @property {string} backend
 */

/**
 * @typedef {object} ModelEntry one model file the page may load (from manifest.json)
 * @property {string} name
 * @property {string} url absolute URL of the file
 * @property {number} bytes
 * @property {string} sha256
 * @property {string | null} license
 * @property {number | null} ram
 * @property {number | null} context_length
 */

/**
 * @typedef {object} Disclosure what a first load will cost, asked before any byte
 * @property {string} model
 * @property {number} bytes model file size (from HEAD)
 * @property {number} engine_bytes engine files (wllama JS + wasm)
 * @property {number} est_seconds estimated download time
 * @property {'measured' | 'assumed'} est_basis where the bandwidth figure came from
 * @property {boolean | null} fits_memory null when the browser does not say
 * @property {boolean | null} fits_storage
 * @property {boolean} cached
 * @property {string} sha256
 * @property {string | null} license
 * @property {string} url
 */

/**
 * @typedef {object} ConsentRequest
 * @property {string} provider
 * @property {string} url
 * @property {string} origin the page asking
 * @property {string} summary what would be sent
 */

/**
 * @typedef {object} RemoteConfig a page-configured OpenAI-compatible endpoint
 * @property {string} baseUrl e.g. https://api.example.com/v1
 * @property {string} [name]
 * @property {string} [apiKey]
 * @property {string} [model]
 */

/**
 * @typedef {object} Progress
 * @property {'download' | 'verify' | 'load' | 'cached' | 'ready'} phase
 * @property {number} done
 * @property {number} total
 */

export {};
