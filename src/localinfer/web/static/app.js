// The demo app: chat with whichever tier answers, see which one did, and see every origin
// the page contacted. Configuration from the query string (all optional):
//   ?gateway=URL|none  &servers=URL,URL|none  &remote=URL  &remote_model=NAME  &model=NAME
import { LocalInfer } from './localinfer.js';
import { setupDocuments } from './app-documents.js';

/** @param {string} id @returns {HTMLElement} */
function $(id) {
  const el = document.getElementById(id);
  if (!el) throw new Error(`#${id} missing`);
  return el;
}

/** @param {number} n @returns {string} */
function size(n) {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)} GB`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)} MB`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)} kB`;
  return `${n} B`;
}

const query = new URLSearchParams(location.search);
/** @param {string} name @returns {string | null} */
const param = (name) => query.get(name);
const gatewayParam = param('gateway');
const serversParam = param('servers');
const remoteUrl = param('remote');

/**
 * A real dialog that resolves true or false.
 * @param {string} dialogId @param {string} yesId @param {string} noId
 * @returns {Promise<boolean>}
 */
function ask(dialogId, yesId, noId) {
  const dialog = /** @type {HTMLDialogElement} */ ($(dialogId));
  return new Promise((resolve) => {
    const done = (/** @type {boolean} */ answer) => { dialog.close(); resolve(answer); };
    $(yesId).onclick = () => done(true);
    $(noId).onclick = () => done(false);
    dialog.showModal();
  });
}

/** @type {string[]} */
const progressLog = [];
const li = await LocalInfer.connect({
  gateway: gatewayParam === 'none' ? null : gatewayParam ?? undefined,
  servers: serversParam === 'none' ? [] : serversParam ? serversParam.split(',') : undefined,
  remote: remoteUrl ? { baseUrl: remoteUrl, model: param('remote_model') ?? undefined } : null,
  model: param('model') ?? undefined,
  onDisclose: async (d) => {
    const facts = $('disclose-facts');
    facts.replaceChildren();
    // The embeddings worker's first load is disclosed through the same hook (kind: 'embeddings').
    const kind = /** @type {any} */ (d).kind ?? 'chat';
    facts.dataset.kind = kind;
    const builtin = /** @type {import('./lib/types.js').BuiltinDisclosure} */ (/** @type {any} */ (d));
    const lines = kind === 'builtin' ? [
      `The browser's own model (Prompt API, ${builtin.model}) — size: ${builtin.size}`,
      'The browser downloads and keeps it itself (not in this page\'s cache); it runs on this device.',
    ] : kind === 'embeddings' ? [
      `Embedding model: ${d.model} — ${size(d.bytes)} to download (${d.license ?? 'licence unknown'})`,
      'Runs in a worker (transformers.js, WebAssembly) to index your documents in this browser.',
      'Cached after the first load, verified by sha256.',
    ] : [
      `Model: ${d.model} — ${size(d.bytes)} (${d.license ?? 'licence unknown'})`,
      `Engine: ${size(d.engine_bytes)} (wllama, WebAssembly)`,
      `Estimated time: ${d.est_seconds.toFixed(1)} s (${d.est_basis} bandwidth)`,
      `Memory: ${d.fits_memory === null ? 'the browser does not say' : d.fits_memory ? 'fits' : 'may not fit'}`,
      `Storage: ${d.fits_storage === null ? 'unknown' : d.fits_storage ? 'fits' : 'not enough space'}`,
      'Cached after the first load, verified by sha256.',
    ];
    for (const line of lines) {
      const li = document.createElement('li');
      li.textContent = line;
      facts.append(li);
    }
    facts.dataset.bytes = String(d.bytes ?? '');
    facts.dataset.engineBytes = String(d.engine_bytes ?? '');
    return ask('disclose', 'disclose-yes', 'disclose-no');
  },
  onConsent: async (c) => {
    $('consent-text').textContent = `${c.summary}. Provider: ${c.provider}. This is remembered for ${c.origin} until you revoke it.`;
    return ask('consent', 'consent-yes', 'consent-no');
  },
  onProgress: (p) => {
    // The embeddings worker's progress shows in the Documents view, not as the chat model's.
    if (/** @type {any} */ (p).kind === 'embeddings') return;
    progressLog.push(p.phase);
    const pct = p.total ? ` ${Math.round((100 * p.done) / p.total)}%` : '';
    $('model-state').textContent = `${p.phase}${pct}`;
  },
});

/** @type {{li: LocalInfer, replies: any[], errors: any[], progress: string[], stream: import('./localinfer.js').ChatStream | null, maxTokens: number, docs: {reports: any[], answers: any[], errors: any[]}}} */
const app = { li, replies: [], errors: [], progress: progressLog, stream: null,
  maxTokens: Number(param('max_tokens') ?? 256), docs: { reports: [], answers: [], errors: [] } };
/** @type {any} */ (window).localinferApp = app;

async function showStatus() {
  const s = await li.status();
  const tier = $('tier');
  if (s.local.kind) tier.textContent = `Answering from a local server: ${s.local.url} (${s.local.kind === 'gateway' ? 'localinfer gateway' : 'OpenAI-compatible server'})`;
  else if (s.browser.available && s.browser.engine === 'chrome-builtin') tier.textContent = 'No local server found: your browser\'s own model answers (on this device)';
  else if (s.browser.available) tier.textContent = `No local server found: the model runs in your browser (${s.browser.engine} ${s.browser.engine_version ?? ''})`;
  else if (s.remote) tier.textContent = `No local tier: a remote service (${s.remote.url}) only with your consent`;
  else tier.textContent = 'No local server and no in-browser engine';
  tier.dataset.tier = s.local.kind ? 'local' : s.browser.available ? 'browser' : s.remote ? 'remote' : 'none';
  if (s.browser.model) {
    const loaded = s.browser.loaded;
    $('model-state').textContent = `${s.browser.model}: ${s.browser.cached ? 'cached in this browser' : 'not downloaded'}`
      + (loaded ? `; loaded${loaded.cached ? ' from the cache (no download)' : ` (${size(loaded.fetched_bytes)} downloaded)`}, ${loaded.threads} thread(s)` : '');
  } else {
    $('model-state').textContent = s.browser.problem ?? 'no in-browser model';
  }
}

async function showPrivacy() {
  const origins = await li.privacy.origins();
  const rows = $('privacy-rows');
  rows.replaceChildren();
  for (const o of origins) {
    const tr = document.createElement('tr');
    tr.dataset.origin = o.origin;
    for (const [text, cls] of [[o.origin, ''], [String(o.requests), ''], [size(o.bytes), ''],
      [o.loopback ? 'this machine' : 'elsewhere', o.loopback ? 'here' : 'elsewhere']]) {
      const td = document.createElement('td');
      td.textContent = text;
      if (cls) td.className = cls;
      tr.append(td);
    }
    rows.append(tr);
  }
  const away = origins.filter((o) => !o.loopback);
  const requests = origins.reduce((n, o) => n + o.requests, 0);
  $('privacy-summary').textContent = away.length === 0
    ? `All ${requests} requests stayed on this machine.`
    : `${away.length} origin(s) off this machine: ${away.map((o) => o.origin).join(', ')}`;
}

/** @param {string} cls @param {string} text @returns {HTMLElement} */
function addMessage(cls, text) {
  const div = document.createElement('div');
  div.className = `msg ${cls}`;
  div.textContent = text;
  $('log').append(div);
  $('log').scrollTop = $('log').scrollHeight;
  return div;
}

/** @type {import('./lib/types.js').ChatMessage[]} */
const history = [];

async function send(/** @type {Event} */ event) {
  event.preventDefault();
  const promptEl = /** @type {HTMLTextAreaElement} */ ($('prompt'));
  const text = promptEl.value.trim();
  if (!text) return;
  promptEl.value = '';
  history.push({ role: 'user', content: text });
  addMessage('user', text);
  const out = addMessage('assistant', '');
  const body = document.createElement('span');
  out.append(body);
  document.body.dataset.state = 'busy';
  /** @type {HTMLButtonElement} */ ($('send')).disabled = true;
  /** @type {HTMLButtonElement} */ ($('stop')).disabled = false;
  const maxTokens = app.maxTokens;
  const started = performance.now();
  try {
    const stream = /** @type {import('./localinfer.js').ChatStream} */ (await li.chat.completions.create({
      messages: history.slice(-8), stream: true, max_tokens: maxTokens,
      sensitive: /** @type {HTMLInputElement} */ ($('sensitive')).checked,
    }));
    app.stream = stream;
    let content = '';
    /** @type {any} */
    let last = null;
    let firstAt = null;
    for await (const chunk of stream) {
      const piece = chunk.choices[0]?.delta?.content ?? '';
      if (piece) { firstAt ??= performance.now(); content += piece; body.textContent = content; }
      last = chunk;
    }
    history.push({ role: 'assistant', content });
    const badge = document.createElement('span');
    badge.className = 'badge';
    badge.textContent = `answered by ${stream.tier} · ${stream.backend}`;
    out.append(badge);
    out.dataset.tier = stream.tier;
    out.dataset.done = 'true';
    app.replies.push({ content, tier: stream.tier, backend: stream.backend,
      finish_reason: last?.choices?.[0]?.finish_reason ?? null, usage: last?.usage ?? null,
      timings: last?.timings ?? null, aborted: stream.controller.signal.aborted,
      first_piece_ms: firstAt === null ? null : firstAt - started,
      total_ms: performance.now() - started, ended_at: performance.now() });
  } catch (err) {
    const e = /** @type {any} */ (err);
    out.classList.add('error');
    out.dataset.done = 'true';
    out.dataset.error = e?.code ?? 'error';
    body.textContent = `${e?.message ?? String(err)}`;
    app.errors.push({ code: e?.code ?? 'error', message: e?.message ?? String(err), at: performance.now() });
    history.pop();
  } finally {
    app.stream = null;
    document.body.dataset.state = 'idle';
    /** @type {HTMLButtonElement} */ ($('send')).disabled = false;
    /** @type {HTMLButtonElement} */ ($('stop')).disabled = true;
    await showStatus();
    await showPrivacy();
  }
}

$('ask').addEventListener('submit', send);
$('stop').addEventListener('click', () => li.abort());
$('privacy-refresh').addEventListener('click', showPrivacy);
$('forget-model').addEventListener('click', async () => { await li.cache.clear(); await showStatus(); });
$('revoke-consent').addEventListener('click', () => { li.consent.revoke(); });
$('prompt').addEventListener('keydown', (e) => {
  if (e.key === 'Enter' && !e.shiftKey) { e.preventDefault(); /** @type {HTMLFormElement} */ ($('ask')).requestSubmit(); }
});
performance.setResourceTimingBufferSize(10000);
await showStatus();
await showPrivacy();
await setupDocuments(li, app, showPrivacy);
/** @type {HTMLButtonElement} */ ($('send')).disabled = false;
document.body.dataset.state = 'idle';
