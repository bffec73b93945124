// Consent for a page-configured remote endpoint: granted once through the page's
// `onConsent` callback, stored per origin (localStorage is per origin), revocable.

const KEY = 'localinfer.consent.v1';

/**
 * @typedef {object} Grant
 * @property {string} url
 * @property {number} granted ms since the epoch
 */

/** @returns {Record<string, Grant>} */
function read() {
  try {
    const data = JSON.parse(localStorage.getItem(KEY) ?? '{}');
    return data && typeof data === 'object' ? data : {};
  } catch {
    return {};
  }
}

/** @param {Record<string, Grant>} grants */
function write(grants) { localStorage.setItem(KEY, JSON.stringify(grants)); }

/** @param {string} url @returns {boolean} */
export function isGranted(url) { return url in read(); }

/** @param {string} url */
export function grant(url) {
  const grants = read();
  grants[url] = { url, granted: Date.now() };
  write(grants);
}

/** @param {string} [url] one endpoint, or every grant of this origin @returns {number} */
export function revoke(url) {
  const grants = read();
  const before = Object.keys(grants).length;
  if (url === undefined) write({});
  else { delete grants[url]; write(grants); }
  return before - Object.keys(read()).length;
}

/** @returns {Grant[]} */
export function listGrants() { return Object.values(read()); }
