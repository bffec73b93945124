// The demo's conversations, kept in this browser (IndexedDB `localinfer-chats-v1`, one
// record per conversation) so a reload or a new visit finds them again. Nothing here is
// sent anywhere; "Delete", "Delete all" and "Clear everything" remove them.

export const CHATS_DB = 'localinfer-chats-v1';
const STORE = 'chats';

/**
 * @typedef {object} StoredMessage
 * @property {'user' | 'assistant'} role
 * @property {string} content
 * @property {string} [tier] who answered (assistant messages)
 * @property {string} [backend]
 * @property {string} [why] the model panel's explanation at the time
 * @property {boolean} [stopped] the answer was stopped before its end
 */

/**
 * @typedef {object} Conversation
 * @property {string} id
 * @property {string} title
 * @property {number} created ms since the epoch
 * @property {number} updated
 * @property {StoredMessage[]} messages
 */

/** @type {Promise<IDBDatabase> | null} */
let opening = null;

/** @returns {Promise<IDBDatabase>} */
function open() {
  opening ??= new Promise((resolve, reject) => {
    const req = indexedDB.open(CHATS_DB, 1);
    req.onupgradeneeded = () => {
      const db = req.result;
      if (!db.objectStoreNames.contains(STORE)) db.createObjectStore(STORE, { keyPath: 'id' });
    };
    req.onsuccess = () => {
      const db = req.result;
      db.onversionchange = () => { db.close(); opening = null; };
      resolve(db);
    };
    req.onerror = () => { opening = null; reject(req.error); };
    req.onblocked = () => { opening = null; reject(new Error('the chats database is blocked by another tab')); };
  });
  return opening;
}

/**
 * @template T
 * @param {IDBTransactionMode} mode
 * @param {(store: IDBObjectStore) => IDBRequest<T> | void} work
 * @returns {Promise<T | undefined>}
 */
async function run(mode, work) {
  const db = await open();
  return new Promise((resolve, reject) => {
    const tx = db.transaction(STORE, mode);
    const req = work(tx.objectStore(STORE));
    tx.oncomplete = () => resolve(req ? req.result : undefined);
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error ?? new Error('transaction aborted'));
  });
}

/** Every conversation, most recently updated first. @returns {Promise<Conversation[]>} */
export async function listChats() {
  const all = /** @type {Conversation[]} */ ((await run('readonly', (s) => s.getAll())) ?? []);
  return all.sort((a, b) => b.updated - a.updated);
}

/** @param {Conversation} chat @returns {Promise<void>} */
export async function saveChat(chat) {
  await run('readwrite', (s) => { s.put(structuredClone(chat)); });
}

/** @param {string} id @returns {Promise<void>} */
export async function deleteChat(id) {
  await run('readwrite', (s) => { s.delete(id); });
}

/** @returns {Promise<void>} */
export async function clearChats() {
  await run('readwrite', (s) => { s.clear(); });
}

/** @returns {Conversation} a new, empty conversation (stored once it has a message) */
export function newChat() {
  const now = Date.now();
  return { id: `chat-${now.toString(36)}-${Math.random().toString(36).slice(2, 8)}`,
    title: 'New conversation', created: now, updated: now, messages: [] };
}

/** @param {string} text @returns {string} a conversation's title from its first question */
export function titleFrom(text) {
  const line = text.trim().split('\n')[0].replace(/\s+/g, ' ');
  return line.length > 60 ? `${line.slice(0, 59)}…` : line || 'New conversation';
}
