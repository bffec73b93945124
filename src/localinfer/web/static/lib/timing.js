// "Where did my data go": every origin this page contacted, from the browser's own
// Resource Timing entries (the page's and the engine worker's), not from our bookkeeping.

/**
 * @typedef {object} TimingEntry
 * @property {string} name URL
 * @property {number} transferSize
 * @property {number} encodedBodySize
 */

/**
 * @typedef {object} OriginUse
 * @property {string} origin
 * @property {number} requests
 * @property {number} bytes bytes received (0 where the browser may not say)
 * @property {boolean} loopback
 */

/** @returns {TimingEntry[]} this context's entries (navigation + resources) */
export function ownEntries() {
  /** @type {TimingEntry[]} */
  const found = [];
  for (const type of ['navigation', 'resource']) {
    for (const e of performance.getEntriesByType(type)) {
      const r = /** @type {PerformanceResourceTiming} */ (e);
      found.push({ name: r.name, transferSize: r.transferSize ?? 0,
        encodedBodySize: r.encodedBodySize ?? 0 });
    }
  }
  return found;
}

/** @param {string} host @returns {boolean} */
export function isLoopbackHost(host) {
  const h = host.replace(/^\[|\]$/g, '');
  return h === 'localhost' || h === '::1' || /^127\./.test(h);
}

/**
 * @param {TimingEntry[]} entries
 * @returns {OriginUse[]}
 */
export function byOrigin(entries) {
  /** @type {Map<string, OriginUse>} */
  const seen = new Map();
  for (const e of entries) {
    let url;
    try { url = new URL(e.name); } catch { continue; }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') continue; // blob:, data:
    const use = seen.get(url.origin) ?? { origin: url.origin, requests: 0, bytes: 0,
      loopback: isLoopbackHost(url.hostname) };
    use.requests += 1;
    use.bytes += e.transferSize || e.encodedBodySize || 0;
    seen.set(url.origin, use);
  }
  return [...seen.values()];
}
