// Every download of a model or runtime, one way: fetched from this origin with progress as
// the bytes arrive; model files checked against their sha256 and kept in the verified cache
// (lib/cache.js), so a file is downloaded once and never used unverified. Works in a
// window and in a worker. Stopping a download is ending its worker (BrowserEngine.cancelLoad);
// nothing half-downloaded is kept, since the cache only takes a file whose sha256 matched.
import { readVerified, storeVerified } from './cache.js';

const EVERY_MS = 100; // at most one progress report per this many milliseconds

/**
 * @typedef {(done: number, total: number) => void} OnBytes bytes so far, and the
 *   Content-Length (0 when the server sent none)
 */

/**
 * A file's bytes, reported as they arrive (at most every 100 ms, and once at the end).
 * @param {string} url
 * @param {{cache?: RequestCache, type?: string, onProgress?: OnBytes,
 *   refused?: (response: Response) => Promise<Error>}} [opts] cache: the fetch's cache mode,
 *   'no-store' unless said (model files live in the Cache API); type: the Blob's;
 *   refused: the error for an answer that is not a 2xx (default "URL: HTTP status")
 * @returns {Promise<Blob>}
 */
export async function download(url, opts = {}) {
  const response = await fetch(url, { cache: opts.cache ?? 'no-store', credentials: 'same-origin' });
  if (!response.ok || !response.body) {
    throw opts.refused ? await opts.refused(response) : new Error(`${url}: HTTP ${response.status}`);
  }
  const total = Number(response.headers.get('content-length') ?? 0);
  const reader = response.body.getReader();
  /** @type {Uint8Array[]} */
  const parts = [];
  let done = 0;
  let last = 0;
  while (true) {
    const read = await reader.read();
    if (read.done) break;
    parts.push(read.value);
    done += read.value.byteLength;
    const now = performance.now();
    if (opts.onProgress && now - last > EVERY_MS) { last = now; opts.onProgress(done, total); }
  }
  opts.onProgress?.(done, total);
  return new Blob(/** @type {BlobPart[]} */ (parts), { type: opts.type ?? '' });
}

/**
 * A model file: from the verified cache when it is there, else downloaded, checked
 * against its sha256 (an IntegrityError naming the file if not) and stored.
 * @param {{name: string, url: string, sha256: string}} file name: as the cache lists it
 * @param {(phase: 'download' | 'verify', done: number, total: number) => void} [onProgress]
 * @returns {Promise<{blob: Blob, fetched: number, downloadMs: number}>} fetched: bytes
 *   downloaded (0: from the cache)
 */
export async function fetchVerified(file, onProgress) {
  const cached = await readVerified(file.sha256);
  if (cached !== null) return { blob: cached, fetched: 0, downloadMs: 0 };
  const started = performance.now();
  const blob = await download(file.url, { type: 'application/octet-stream',
    onProgress: onProgress && ((done, total) => onProgress('download', done, total)) });
  const downloadMs = performance.now() - started;
  onProgress?.('verify', 0, blob.size);
  await storeVerified(file.name, file.sha256, blob);
  return { blob, fetched: blob.size, downloadMs };
}
