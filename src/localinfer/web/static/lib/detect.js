// Which local server can answer this page, tried in order, once per page life:
// 1. the page's own origin, when the localinfer gateway served it (`/health`);
// 2. the configured gateway URL (default http://127.0.0.1:8642);
// 3. local servers the page is allowed to reach (Ollama with OLLAMA_ORIGINS, LM Studio,
//    llama-server), by their OpenAI-compatible `/v1/models`.
// A gateway that answers but has no local chat model counts as no local server.
import { probe } from './http.js';

export const DEFAULT_GATEWAY = 'http://127.0.0.1:8642';
export const DEFAULT_SERVERS = ['http://127.0.0.1:11434', 'http://127.0.0.1:1234',
  'http://127.0.0.1:8080'];
export const DEFAULT_TIMEOUT_MS = 500;
const NO_CHAT = 'gateway has no local chat model';
const GATEWAY_MODELS_TIMEOUT_MS = 15000;

/**
 * @typedef {object} Probe
 * @property {string} url
 * @property {boolean} ok
 * @property {string} note
 */

/**
 * @typedef {object} Detected
 * @property {'gateway' | 'server' | null} kind
 * @property {string | null} baseUrl OpenAI base URL (ends in /v1)
 * @property {string | null} origin
 * @property {string[]} models chat models it can serve locally
 * @property {Probe[]} tried every probe, in order
 */

/** @type {Map<string, Promise<Detected>>} */
const memo = new Map();

/**
 * @param {{gateway?: string | null, servers?: string[], timeoutMs?: number}} opts
 * @returns {Promise<Detected>}
 */
export function detect(opts) {
  const key = JSON.stringify([opts.gateway, opts.servers, opts.timeoutMs]);
  let found = memo.get(key);
  if (!found) {
    found = run(opts);
    memo.set(key, found);
  }
  return found;
}

/** Forget the cached result (a page that wants to look again). */
export function forgetDetection() { memo.clear(); }

/**
 * @param {any} card one entry of /v1/models
 * @returns {boolean}
 */
function isLocalChat(card) {
  const info = card?.localinfer;
  if (!info) return true; // a plain server: everything it lists is on this machine
  return info.tier !== 'remote' && (info.capabilities ?? ['chat']).includes('chat');
}

/**
 * @param {string} origin
 * @param {number} timeoutMs
 * @returns {Promise<string[] | null>} local chat models, null if unreachable
 */
async function chatModels(origin, timeoutMs) {
  const r = await probe(`${origin}/v1/models`, timeoutMs);
  if (!r || !r.ok) return null;
  try {
    const data = await r.json();
    return (data?.data ?? []).filter(isLocalChat).map((/** @type {any} */ m) => String(m.id));
  } catch {
    return null;
  }
}

/**
 * @param {string} origin
 * @param {number} timeoutMs
 * @returns {Promise<boolean>}
 */
async function isGateway(origin, timeoutMs) {
  const r = await probe(`${origin}/health`, timeoutMs);
  if (!r || !r.ok) return false;
  try {
    return (await r.json())?.service === 'localinfer';
  } catch {
    return false;
  }
}

/**
 * @param {{gateway?: string | null, servers?: string[], timeoutMs?: number}} opts
 * @returns {Promise<Detected>}
 */
async function run(opts) {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  /** @type {Probe[]} */
  const tried = [];
  /** @type {string[]} */
  const gateways = [];
  const own = typeof location !== 'undefined' && location.protocol.startsWith('http')
    ? location.origin : null;
  if (own) gateways.push(own);
  const configured = opts.gateway === undefined ? DEFAULT_GATEWAY : opts.gateway;
  if (configured) {
    const origin = new URL(configured).origin;
    if (!gateways.includes(origin)) gateways.push(origin);
  }
  for (const origin of gateways) {
    // A page the gateway served and that names no other gateway: it is the gateway.
    if (origin !== own && opts.gateway === undefined && tried.some((t) => t.note === NO_CHAT)) break;
    if (!(await isGateway(origin, timeoutMs))) {
      tried.push({ url: origin, ok: false, note: origin === own
        ? 'this page was not served by the localinfer gateway'
        : 'no gateway answered (or it does not allow this origin: --allow-origin)' });
      continue;
    }
    // Identified by /health: its first model listing may take a while (a cold gateway
    // sweeps for servers and starts its backends), so it gets longer than a probe.
    const models = await chatModels(origin, GATEWAY_MODELS_TIMEOUT_MS);
    if (!models || models.length === 0) {
      tried.push({ url: origin, ok: false, note: NO_CHAT });
      continue;
    }
    tried.push({ url: origin, ok: true, note: 'localinfer gateway' });
    return { kind: 'gateway', baseUrl: `${origin}/v1`, origin, models, tried };
  }
  for (const server of opts.servers ?? DEFAULT_SERVERS) {
    const origin = new URL(server).origin;
    const models = await chatModels(origin, timeoutMs);
    if (!models || models.length === 0) {
      tried.push({ url: origin, ok: false, note: models ? 'no chat model' : 'unreachable' });
      continue;
    }
    tried.push({ url: origin, ok: true, note: 'OpenAI-compatible local server' });
    return { kind: 'server', baseUrl: `${origin}/v1`, origin, models, tried };
  }
  return { kind: null, baseUrl: null, origin: null, models: [], tried };
}
