// Model files cached once in the Cache API, keyed by sha256 (content-addressed, like the
// Python side), verified with SubtleCrypto when stored and again when loaded.
// Works in a window and in a worker (both have `caches` and `crypto.subtle`).
import { IntegrityError } from './errors.js';

export const CACHE_NAME = 'localinfer-models-v1';
const KEY_PREFIX = '/__localinfer_models__/sha256-';

/**
 * @typedef {object} CachedModel
 * @property {string} name
 * @property {string} sha256
 * @property {number} bytes
 * @property {number} stored ms since the epoch
 */

/** @param {string} sha256 @returns {string} */
function keyFor(sha256) {
  return new URL(KEY_PREFIX + sha256, self.location.href).href;
}

/** @param {ArrayBuffer} buffer @returns {Promise<string>} hex sha256 */
export async function sha256Hex(buffer) {
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', buffer));
  return Array.from(digest, (b) => b.toString(16).padStart(2, '0')).join('');
}

/**
 * The one sha256 check of downloaded bytes: an IntegrityError when they differ.
 * @param {ArrayBuffer} buffer @param {string} sha256 expected
 * @param {(actual: string) => string} mismatch the error's message
 * @returns {Promise<void>}
 */
export async function checkSha256(buffer, sha256, mismatch) {
  const actual = await sha256Hex(buffer);
  if (actual !== sha256) throw new IntegrityError(mismatch(actual));
}

/** @param {string} sha256 @returns {Promise<boolean>} */
export async function isCached(sha256) {
  const cache = await caches.open(CACHE_NAME);
  return (await cache.match(keyFor(sha256))) !== undefined;
}

/**
 * The cached file, verified again; null when absent. A damaged entry is deleted.
 * @param {string} sha256
 * @returns {Promise<Blob | null>}
 */
export async function readVerified(sha256) {
  const cache = await caches.open(CACHE_NAME);
  const hit = await cache.match(keyFor(sha256));
  if (!hit) return null;
  const blob = await hit.blob();
  if ((await sha256Hex(await blob.arrayBuffer())) !== sha256) {
    await cache.delete(keyFor(sha256));
    return null;
  }
  return blob;
}

/**
 * Verify and store a downloaded file.
 * @param {string} name
 * @param {string} sha256 expected
 * @param {Blob} blob
 * @returns {Promise<void>}
 */
export async function storeVerified(name, sha256, blob) {
  await checkSha256(await blob.arrayBuffer(), sha256,
    (actual) => `${name}: sha256 ${actual} does not match the manifest's ${sha256}`);
  const cache = await caches.open(CACHE_NAME);
  await cache.put(keyFor(sha256), new Response(blob, { headers: {
    'content-type': 'application/octet-stream',
    'content-length': String(blob.size),
    'x-localinfer-name': name,
    'x-localinfer-sha256': sha256,
    'x-localinfer-stored': String(Date.now()),
  } }));
}

/** @returns {Promise<CachedModel[]>} */
export async function listCached() {
  const cache = await caches.open(CACHE_NAME);
  /** @type {CachedModel[]} */
  const found = [];
  for (const request of await cache.keys()) {
    const r = await cache.match(request);
    if (!r) continue;
    found.push({ name: r.headers.get('x-localinfer-name') ?? '?',
      sha256: r.headers.get('x-localinfer-sha256') ?? '',
      bytes: Number(r.headers.get('content-length') ?? 0),
      stored: Number(r.headers.get('x-localinfer-stored') ?? 0) });
  }
  return found;
}

/** @param {string} name @returns {Promise<number>} entries removed */
export async function deleteCached(name) {
  const cache = await caches.open(CACHE_NAME);
  let removed = 0;
  for (const request of await cache.keys()) {
    const r = await cache.match(request);
    if (r && (r.headers.get('x-localinfer-name') === name
      || r.headers.get('x-localinfer-sha256') === name)) {
      await cache.delete(request);
      removed += 1;
    }
  }
  return removed;
}

/** @returns {Promise<boolean>} */
export async function clearCached() {
  return caches.delete(CACHE_NAME);
}
