// The page's document index in IndexedDB: documents (per collection, with the content's
// sha256), chunks with their Float32 vectors, and per-collection metadata (which
// embedding model made the vectors). It survives reloads; a full disk is a clear error.
import { LocalInferError } from '../errors.js';

export const DB_NAME = 'localinfer-documents-v1';
const VERSION = 1;

/** The browser refused to store more (quota): the page should say so, not fail silently. */
export class StorageFull extends LocalInferError {
  /** @param {string} message */
  constructor(message) { super(message, 'storage_full'); }
}

/**
 * @typedef {object} DocRow
 * @property {string} collection
 * @property {string} name
 * @property {string} kind
 * @property {string} sha256
 * @property {number} bytes
 * @property {number} chunks
 * @property {number} added ms since the epoch
 *
 * @typedef {object} ChunkRow
 * @property {number} [id]
 * @property {string} collection
 * @property {string} name document name
 * @property {number} seq position in the document
 * @property {string} text
 * @property {string} heading
 * @property {number | null} start_line
 * @property {number | null} end_line
 * @property {ArrayBuffer} vector Float32, unit length
 *
 * @typedef {object} CollectionRow
 * @property {string} name
 * @property {string} model embedding model id
 * @property {number} dim
 * @property {number} created
 */

/** @param {IDBRequest | IDBTransaction} req @returns {Promise<any>} */
function done(req) {
  const settled = new Promise((resolve, reject) => {
    if (req instanceof IDBTransaction) {
      req.oncomplete = () => resolve(undefined);
      req.onabort = () => reject(translate(req.error));
      req.onerror = () => reject(translate(req.error));
    } else {
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => reject(translate(req.error));
    }
  });
  // A transaction's promise is awaited last; if an earlier step throws, its rejection must
  // not surface as an unhandled one (the caller already has the error).
  if (req instanceof IDBTransaction) settled.catch(() => {});
  return settled;
}

/** @param {DOMException | null} error @returns {Error} */
function translate(error) {
  if (error?.name === 'QuotaExceededError') {
    return new StorageFull('the browser has no room left for this document index '
      + '(storage quota reached): remove documents or collections, or free disk space');
  }
  return error ?? new LocalInferError('IndexedDB failed', 'storage_error');
}

export class Store {
  /** @param {IDBDatabase} db */
  constructor(db) { this.db = db; }

  /** @param {string} [name] @returns {Promise<Store>} */
  static async open(name = DB_NAME) {
    const req = indexedDB.open(name, VERSION);
    req.onupgradeneeded = () => {
      const db = req.result;
      db.createObjectStore('docs', { keyPath: ['collection', 'name'] });
      const chunks = db.createObjectStore('chunks', { keyPath: 'id', autoIncrement: true });
      chunks.createIndex('by_doc', ['collection', 'name']);
      chunks.createIndex('by_collection', 'collection');
      db.createObjectStore('collections', { keyPath: 'name' });
    };
    return new Store(await done(req));
  }

  /** @param {string} collection @param {string} name @returns {Promise<DocRow | undefined>} */
  async doc(collection, name) {
    return done(this.db.transaction('docs').objectStore('docs').get([collection, name]));
  }

  /** @param {string} [collection] @returns {Promise<DocRow[]>} */
  async docs(collection) {
    /** @type {DocRow[]} */
    const all = await done(this.db.transaction('docs').objectStore('docs').getAll());
    return collection === undefined ? all : all.filter((d) => d.collection === collection);
  }

  /** @returns {Promise<CollectionRow[]>} */
  async collections() {
    return done(this.db.transaction('collections').objectStore('collections').getAll());
  }

  /** @param {string} [collection] @returns {Promise<ChunkRow[]>} */
  async chunks(collection) {
    const store = this.db.transaction('chunks').objectStore('chunks');
    return done(collection === undefined ? store.getAll()
      : store.index('by_collection').getAll(collection));
  }

  /**
   * Replace a document and its chunks in one transaction (nothing half-written).
   * @param {DocRow} doc
   * @param {ChunkRow[]} chunks
   * @param {CollectionRow} meta
   */
  async put(doc, chunks, meta) {
    const tx = this.db.transaction(['docs', 'chunks', 'collections'], 'readwrite');
    const finished = done(tx);
    const store = tx.objectStore('chunks');
    const old = await done(store.index('by_doc').getAllKeys([doc.collection, doc.name]));
    for (const key of old) store.delete(key);
    for (const c of chunks) store.add(c);
    tx.objectStore('docs').put(doc);
    const collections = tx.objectStore('collections');
    if (!(await done(collections.get(meta.name)))) collections.put(meta);
    await finished;
  }

  /**
   * Remove documents (by name) or a whole collection; returns the names removed.
   * @param {string} collection
   * @param {string[] | null} names null: every document of the collection
   * @returns {Promise<string[]>}
   */
  async remove(collection, names) {
    const docs = await this.docs(collection);
    const gone = docs.filter((d) => names === null || names.includes(d.name));
    const tx = this.db.transaction(['docs', 'chunks', 'collections'], 'readwrite');
    const finished = done(tx);
    const chunks = tx.objectStore('chunks');
    for (const d of gone) {
      const keys = await done(chunks.index('by_doc').getAllKeys([collection, d.name]));
      for (const key of keys) chunks.delete(key);
      tx.objectStore('docs').delete([collection, d.name]);
    }
    if (gone.length === docs.length) tx.objectStore('collections').delete(collection);
    await finished;
    return gone.map((d) => d.name);
  }

  /** Everything, every collection. */
  async clear() {
    const tx = this.db.transaction(['docs', 'chunks', 'collections'], 'readwrite');
    const finished = done(tx);
    for (const name of ['docs', 'chunks', 'collections']) tx.objectStore(name).clear();
    await finished;
  }

  close() { this.db.close(); }
}
