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
 * @property {ResponseFormat} [response_format] passed to a local server; the browser's
 *   built-in model constrains its answer to the schema (`responseConstraint`)
 * @property {AbortSignal} [signal]
 * @property {Tier[]} [tiers] the tiers this request may use, in the usual order (default all:
 *   `['local', 'browser', 'remote']`); e.g. `['browser']` runs the in-page model even though a
 *   local server answers
 */

/**
 * @typedef {{type: 'text'} | {type: 'json_object'}
 *   | {type: 'json_schema', json_schema: {name?: string, schema: object, strict?: boolean}}} ResponseFormat
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
 * @typedef {object} BuiltinDisclosure the browser's own model (Prompt API): the browser
 *   downloads and keeps it, outside the page's cache; asked before `LanguageModel.create()`
 * @property {'builtin'} kind
 * @property {'chrome-builtin'} model
 * @property {'downloadable' | 'downloading'} state what `LanguageModel.availability()` said
 * @property {number | null} bytes as the browser reported it (`downloadprogress`), else null
 * @property {string} size the size in words: bytes, or "unknown, managed by the browser"
 * @property {'browser'} managed_by who downloads, stores and deletes it
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
 * @property {'download' | 'verify' | 'load' | 'cached' | 'ready' | 'embed'} phase
 * @property {number} done
 * @property {number} total
 * @property {'builtin' | 'embeddings'} [kind] set for the browser's own model (done/total as
 *   it reports them) and for the embedding model (`embed`: texts embedded so far)
 */

// The Prompt API (`LanguageModel`), as far as localinfer uses it. TypeScript's DOM lib has
// no types for it; these follow the published IDL (webmachinelearning.github.io/prompt-api).

/** @typedef {'unavailable' | 'downloadable' | 'downloading' | 'available'} LanguageModelAvailability */

/**
 * @typedef {object} LanguageModelMessage
 * @property {'system' | 'user' | 'assistant'} role
 * @property {string} content
 * @property {boolean} [prefix] an assistant message the answer continues
 */

/** @typedef {string | LanguageModelMessage[]} LanguageModelPrompt */

/**
 * @typedef {object} LanguageModelParams (extension and experimental contexts only)
 * @property {number} defaultTopK
 * @property {number} maxTopK
 * @property {number} defaultTemperature
 * @property {number} maxTemperature
 */

/**
 * @typedef {object} LanguageModelCreateOptions
 * @property {LanguageModelMessage[]} [initialPrompts] a system message may only come first
 * @property {AbortSignal} [signal]
 * @property {(monitor: EventTarget) => void} [monitor] fires `downloadprogress`
 *   (a ProgressEvent: `loaded` of `total`, a fraction of 1 in current Chrome)
 * @property {number} [temperature] with `topK`, where `params()` exists
 * @property {number} [topK]
 * @property {{type: string, languages?: string[]}[]} [expectedInputs]
 * @property {{type: string, languages?: string[]}[]} [expectedOutputs]
 */

/**
 * @typedef {object} LanguageModelPromptOptions
 * @property {AbortSignal} [signal]
 * @property {object | RegExp} [responseConstraint] a JSON schema (or RegExp) the answer follows
 */

/**
 * @typedef {EventTarget & {
 *   prompt(input: LanguageModelPrompt, options?: LanguageModelPromptOptions): Promise<string>,
 *   promptStreaming(input: LanguageModelPrompt, options?: LanguageModelPromptOptions): ReadableStream<string>,
 *   measureContextUsage?: (input: LanguageModelPrompt, options?: LanguageModelPromptOptions) => Promise<number>,
 *   readonly contextUsage?: number,
 *   readonly contextWindow?: number,
 *   destroy(): void,
 * }} LanguageModelSession a session (context overflow: QuotaExceededError, `contextoverflow`)
 */

/**
 * @typedef {object} LanguageModelStatic the `LanguageModel` global
 * @property {(options?: LanguageModelCreateOptions) => Promise<LanguageModelAvailability>} availability
 * @property {(options?: LanguageModelCreateOptions) => Promise<LanguageModelSession>} create
 * @property {() => Promise<LanguageModelParams | null>} [params]
 */

export {};
