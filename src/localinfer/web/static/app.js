// The demo app: chat with whichever tier answers, see which one did and why, keep the
// conversations in this browser, and see every origin the page contacted. Answers are
// rendered by lib/markdown.js (DOM nodes and text only: a model's HTML never runs).
// Configuration from the query string (all optional):
//   ?gateway=URL|none  &servers=URL,URL|none  &remote=URL  &remote_model=NAME  &model=NAME
import { LocalInfer } from './localinfer.js';
import { setupDocuments } from './app-documents.js';
import { clearChats, deleteChat, listChats, newChat, saveChat, titleFrom } from './app-chats.js';
import { renderMarkdown } from './lib/markdown.js';

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
    let settled = false;
    const done = (/** @type {boolean} */ answer) => {
      if (settled) return;
      settled = true;
      dialog.close();
      resolve(answer);
    };
    $(yesId).onclick = () => done(true);
    $(noId).onclick = () => done(false);
    // Escape closes a modal dialog: that is a no (the request must not wait forever).
    dialog.oncancel = (e) => { e.preventDefault(); done(false); };
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
    if (p.kind === 'embeddings') return;
    progressLog.push(p.phase);
    const pct = p.total ? ` ${Math.round((100 * p.done) / p.total)}%` : '';
    $('model-state').textContent = `${p.phase}${pct}`;
  },
});

/** @typedef {import('./app-chats.js').Conversation} Conversation */
/** @type {{li: LocalInfer, replies: any[], errors: any[], progress: string[], stream: import('./localinfer.js').ChatStream | null, maxTokens: number, docs: {reports: any[], answers: any[], errors: any[]}, chat: () => Conversation, chats: () => Promise<Conversation[]>}} */
const app = { li, replies: [], errors: [], progress: progressLog, stream: null,
  maxTokens: Number(param('max_tokens') ?? 256), docs: { reports: [], answers: [], errors: [] },
  chat: () => current, chats: listChats };
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
  const local = s.local.kind !== null;
  const choice = /** @type {HTMLElement} */ ($('inpage-choice'));
  const model = li.browserModel();
  if (s.browser.model && model) {
    const loaded = s.browser.loaded;
    const cached = s.browser.cached ? 'cached in this browser' : `${size(model.bytes)}, not downloaded`;
    $('model-state').textContent = loaded
      ? `In-page model ${s.browser.model}: loaded${loaded.cached ? ' from the cache (no download)' : ` (${size(loaded.fetched_bytes)} downloaded)`}, ${loaded.threads} thread(s)`
      : local
        ? `In-page model (optional) ${s.browser.model}: ${s.browser.cached ? cached : `${size(model.bytes)} if you choose it`}. Not needed while your local server answers.`
        : `In-page model ${s.browser.model}: ${s.browser.cached ? cached : `${cached} yet (asked before any download)`}`;
    // With a local server, the in-page model is only ever a choice the user makes.
    choice.hidden = !local;
    $('inpage-label').textContent = `Answer with the in-page model instead (${s.browser.model}, runs in this tab${s.browser.cached ? ', cached' : `, ${size(model.bytes)} download, asked first`})`;
  } else {
    $('model-state').textContent = s.browser.problem ?? (s.browser.engine === 'chrome-builtin' && s.browser.available
      ? "The browser's own model (Prompt API), on this device" : 'no in-browser model');
    choice.hidden = true;
  }
  lastStatus = s;
  explain(null);
}

/** @type {Awaited<ReturnType<LocalInfer['status']>> | null} */
let lastStatus = null;
/** @type {{tier: string, backend: string, chosen: boolean} | null} */
let lastAnswer = null;

/**
 * The model panel's first line: which engine answered (or will) and why.
 * @param {{tier: string, backend: string, chosen: boolean} | null} answer
 * @returns {string}
 */
function explain(answer) {
  if (answer) lastAnswer = answer;
  const s = lastStatus;
  const a = lastAnswer;
  const why = $('engine-why');
  let text;
  if (a) {
    const reason = a.chosen ? 'you chose it over your local server'
      : s?.local.kind ? 'your local server failed before answering' : 'no local server was found';
    if (a.tier === 'local') {
      text = `Your local server answered (${a.backend}${s?.local.url ? ` at ${s.local.url}` : ''}); the in-page model is not needed.`;
    } else if (a.tier === 'browser' && a.backend === 'chrome-builtin') {
      text = `Your browser's own model answered (chrome-builtin, on this device, nothing downloaded into the page): ${reason}.`;
    } else if (a.tier === 'browser') {
      text = `The in-page model answered (${a.backend}, in this tab, on this device): ${reason}.`;
    } else {
      text = `A remote service answered (${a.backend}) with your consent: no local tier could.`;
    }
    why.dataset.tier = a.tier;
  } else if (s?.local.kind) {
    text = `Your local server will answer (${s.local.url}); the in-page model is not needed.`;
    why.dataset.tier = 'local';
  } else if (s?.browser.available) {
    text = s.browser.engine === 'chrome-builtin'
      ? "No local server found: your browser's own model will answer, on this device."
      : `No local server found: the in-page model will answer${s.browser.cached ? ' from this browser\'s cache' : ' once you agree to its download'}.`;
    why.dataset.tier = 'browser';
  } else if (s?.remote) {
    text = 'No local tier: a remote service answers only with your consent.';
    why.dataset.tier = 'remote';
  } else {
    text = 'Nothing can answer here: start `localinfer serve` (or Ollama) on this machine.';
    why.dataset.tier = 'none';
  }
  why.textContent = text;
  return text;
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

/**
 * A message in the log: the user's as text, an answer rendered from Markdown.
 * @param {'user' | 'assistant'} role
 * @param {string} text
 * @returns {{div: HTMLElement, body: HTMLElement}}
 */
function addMessage(role, text) {
  const div = document.createElement('div');
  div.className = `msg ${role}`;
  const body = document.createElement('span');
  body.className = 'body';
  if (role === 'assistant') body.append(renderMarkdown(text));
  else body.textContent = text;
  div.append(body);
  $('log').append(div);
  $('log').scrollTop = $('log').scrollHeight;
  return { div, body };
}

/**
 * @param {HTMLElement} div
 * @param {import('./app-chats.js').StoredMessage} m
 * @param {boolean} [restored] read back from IndexedDB: `data-restored`, not `data-done`
 *   (`data-done` marks the answers of this page's life)
 */
function addBadge(div, m, restored = false) {
  const badge = document.createElement('span');
  badge.className = 'badge';
  badge.textContent = `answered by ${m.tier} · ${m.backend}${m.stopped ? ' · stopped' : ''}`;
  div.append(badge);
  div.dataset.tier = m.tier ?? '';
  if (restored) div.dataset.restored = 'true';
  else div.dataset.done = 'true';
}

/** @type {Conversation} the conversation on screen (stored once it has a message) */
let current = newChat();

function showConversation() {
  $('log').replaceChildren();
  for (const m of current.messages) {
    const { div } = addMessage(m.role, m.content);
    if (m.role === 'assistant') addBadge(div, m, true);
  }
  $('log').dataset.chat = current.id;
}

/** @param {number} ms @returns {string} */
function when(ms) {
  const d = new Date(ms);
  return d.toDateString() === new Date().toDateString()
    ? d.toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit' }) : d.toLocaleDateString();
}

async function showChats() {
  const chats = await listChats();
  const list = $('chat-list');
  list.replaceChildren();
  for (const c of chats) {
    const item = document.createElement('li');
    item.dataset.id = c.id;
    if (c.id === current.id) item.setAttribute('aria-current', 'true');
    const open = document.createElement('button');
    open.type = 'button';
    open.className = 'open';
    const title = document.createElement('span');
    title.className = 'title';
    title.textContent = c.title;
    const meta = document.createElement('small');
    meta.textContent = `${when(c.updated)} · ${c.messages.length} message(s)`;
    open.append(title, meta);
    open.addEventListener('click', () => {
      current = c;
      showConversation();
      showChats();
    });
    const remove = document.createElement('button');
    remove.type = 'button';
    remove.className = 'delete';
    remove.textContent = '×';
    remove.title = 'Delete this conversation';
    remove.setAttribute('aria-label', `Delete conversation: ${c.title}`);
    remove.addEventListener('click', async () => {
      await deleteChat(c.id);
      if (c.id === current.id) { current = newChat(); showConversation(); }
      await showChats();
    });
    item.append(open, remove);
    list.append(item);
  }
  $('chats').dataset.count = String(chats.length);
}

/** @param {string} title @param {string} text @param {string} yes @returns {Promise<boolean>} */
function confirmed(title, text, yes) {
  $('confirm-title').textContent = title;
  $('confirm-text').textContent = text;
  $('confirm-yes').textContent = yes;
  return ask('confirm', 'confirm-yes', 'confirm-no');
}

/** @param {boolean} busy */
function setBusy(busy) {
  document.body.dataset.state = busy ? 'busy' : 'idle';
  /** @type {HTMLButtonElement} */ ($('send')).disabled = busy;
  /** @type {HTMLButtonElement} */ ($('stop')).disabled = !busy;
  // The conversation being answered stays on screen until its answer ends.
  $('chats').inert = busy;
  /** @type {HTMLButtonElement} */ ($('clear-all')).disabled = busy;
}

async function send(/** @type {Event} */ event) {
  event.preventDefault();
  const promptEl = /** @type {HTMLTextAreaElement} */ ($('prompt'));
  const text = promptEl.value.trim();
  if (!text || document.body.dataset.state === 'busy') return;
  promptEl.value = '';
  const chat = current;
  const chosen = /** @type {HTMLInputElement} */ ($('use-inpage')).checked && !$('inpage-choice').hidden;
  chat.messages.push({ role: 'user', content: text });
  if (chat.messages.length === 1) chat.title = titleFrom(text);
  chat.updated = Date.now();
  addMessage('user', text);
  const { div: out, body } = addMessage('assistant', '');
  setBusy(true);
  await saveChat(chat);
  await showChats();
  const maxTokens = app.maxTokens;
  const started = performance.now();
  try {
    const stream = /** @type {import('./localinfer.js').ChatStream} */ (await li.chat.completions.create({
      messages: chat.messages.slice(-8).map((m) => ({ role: m.role, content: m.content })),
      stream: true, max_tokens: maxTokens,
      sensitive: /** @type {HTMLInputElement} */ ($('sensitive')).checked,
      tiers: chosen ? ['browser'] : undefined,
    }));
    app.stream = stream;
    let content = '';
    /** @type {any} */
    let last = null;
    let firstAt = null;
    for await (const chunk of stream) {
      const piece = chunk.choices[0]?.delta?.content ?? '';
      if (piece) {
        firstAt ??= performance.now();
        content += piece;
        body.replaceChildren(renderMarkdown(content));
      }
      last = chunk;
    }
    const aborted = stream.controller.signal.aborted;
    const why = explain({ tier: stream.tier, backend: stream.backend, chosen });
    /** @type {import('./app-chats.js').StoredMessage} */
    const answer = { role: 'assistant', content, tier: stream.tier, backend: stream.backend, why,
      ...(aborted ? { stopped: true } : {}) };
    chat.messages.push(answer);
    chat.updated = Date.now();
    await saveChat(chat);
    addBadge(out, answer);
    app.replies.push({ content, tier: stream.tier, backend: stream.backend,
      finish_reason: last?.choices?.[0]?.finish_reason ?? null, usage: last?.usage ?? null,
      timings: last?.timings ?? null, aborted,
      first_piece_ms: firstAt === null ? null : firstAt - started,
      total_ms: performance.now() - started, ended_at: performance.now() });
  } catch (err) {
    const e = /** @type {any} */ (err);
    out.classList.add('error');
    out.dataset.done = 'true';
    out.dataset.error = e?.code ?? 'error';
    body.textContent = `${e?.message ?? String(err)}`;
    app.errors.push({ code: e?.code ?? 'error', message: e?.message ?? String(err), at: performance.now() });
    // The question that got no answer is not kept (it would be sent again as history).
    chat.messages.pop();
    if (chat.messages.length) await saveChat(chat);
    else await deleteChat(chat.id);
  } finally {
    app.stream = null;
    setBusy(false);
    await showChats();
    await showStatus();
    if (lastAnswer) explain(null);
    await showPrivacy();
  }
}

$('ask').addEventListener('submit', send);
$('stop').addEventListener('click', () => li.abort());
$('privacy-refresh').addEventListener('click', showPrivacy);
$('forget-model').addEventListener('click', async () => { await li.cache.clear(); await showStatus(); });
$('revoke-consent').addEventListener('click', () => { li.consent.revoke(); });
$('prompt').addEventListener('keydown', (e) => {
  // Enter sends, Shift+Enter is a new line (the textarea's own), and an IME's Enter is its own.
  if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
    e.preventDefault();
    /** @type {HTMLFormElement} */ ($('ask')).requestSubmit();
  }
});
document.addEventListener('keydown', (e) => {
  // Escape stops the answer (a download or load in progress too); in an open dialog it is
  // that dialog's "no" instead.
  if (e.key === 'Escape' && document.body.dataset.state === 'busy' && !document.querySelector('dialog[open]')) {
    e.preventDefault();
    li.abort();
  }
});
$('new-chat').addEventListener('click', async () => {
  current = newChat();
  showConversation();
  await showChats();
  $('prompt').focus();
});
$('delete-chats').addEventListener('click', async () => {
  const n = (await listChats()).length;
  if (!n || !await confirmed('Delete all conversations?',
    `${n} conversation(s) will be deleted from this browser. This cannot be undone.`, 'Delete all')) return;
  await clearChats();
  current = newChat();
  showConversation();
  await showChats();
});
performance.setResourceTimingBufferSize(10000);
await showStatus();
await showPrivacy();
const refreshDocuments = await setupDocuments(li, app, showPrivacy);
$('clear-all').addEventListener('click', async () => {
  if (!await confirmed('Clear everything?', 'Deletes every conversation, every document and its '
    + 'index, the cached models (chat and embeddings) and any remote consent from this browser. '
    + 'The browser\'s own built-in model, if any, is managed by the browser and stays.', 'Clear everything')) return;
  await clearChats();
  await li.documents.clear();
  await li.cache.clear();
  li.consent.revoke();
  current = newChat();
  showConversation();
  await Promise.all([showChats(), refreshDocuments(), showStatus()]);
  document.body.dataset.cleared = String(Number(document.body.dataset.cleared ?? 0) + 1);
});
const stored = await listChats();
if (stored.length) current = stored[0];
showConversation();
await showChats();
setBusy(false);
