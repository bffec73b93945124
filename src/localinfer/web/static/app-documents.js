// The demo's "Documents" view: drop files, watch them index, ask, see the cited passages.
// Document content is only ever set as text (textContent, text nodes, <mark> elements we
// create): a document's HTML is never inserted into this page.

/** @param {string} id @returns {HTMLElement} */
function $(id) {
  const el = document.getElementById(id);
  if (!el) throw new Error(`#${id} missing`);
  return el;
}

/**
 * @param {string} tag
 * @param {string} [text]
 * @param {string} [cls]
 * @returns {HTMLElement}
 */
function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  if (cls) node.className = cls;
  return node;
}

/**
 * A source's text with its cited passages marked, built from text nodes only.
 * @param {string} text
 * @param {{start: number, quote: string, verified: boolean}[]} marks
 * @returns {HTMLElement}
 */
function marked(text, marks) {
  const pre = el('pre');
  const spans = marks.filter((m) => m.start >= 0 && m.quote)
    .sort((a, b) => a.start - b.start);
  let at = 0;
  for (const m of spans) {
    if (m.start < at) continue; // overlapping citations: the first one shows
    pre.append(document.createTextNode(text.slice(at, m.start)));
    const mark = el('mark', text.slice(m.start, m.start + m.quote.length), m.verified ? '' : 'unverified');
    mark.title = m.verified ? 'cited passage (checked against this chunk)' : 'cited, but the answer does not match this passage';
    pre.append(mark);
    at = m.start + m.quote.length;
  }
  pre.append(document.createTextNode(text.slice(at)));
  return pre;
}

/**
 * @param {import('./localinfer.js').LocalInfer} li
 * @param {{docs: {reports: any[], answers: any[], errors: any[]}}} app
 * @param {() => Promise<void>} refreshPrivacy
 * @returns {Promise<() => Promise<void>>} the list's refresh (after "Clear everything")
 */
export async function setupDocuments(li, app, refreshPrivacy) {
  const progress = /** @type {HTMLProgressElement} */ ($('doc-progress'));
  const status = $('doc-status');
  const view = $('docs');

  const show = (/** @type {'chat' | 'docs'} */ which) => {
    view.hidden = which !== 'docs';
    $('chat').hidden = which !== 'chat';
    $('view-chat').setAttribute('aria-pressed', String(which === 'chat'));
    $('view-docs').setAttribute('aria-pressed', String(which === 'docs'));
  };
  $('view-chat').addEventListener('click', () => show('chat'));
  $('view-docs').addEventListener('click', () => show('docs'));
  if (new URLSearchParams(location.search).get('view') === 'documents') show('docs');

  async function refreshList() {
    const { documents } = await li.documents.list();
    const list = $('doc-list');
    list.replaceChildren();
    for (const d of documents.sort((a, b) => a.name.localeCompare(b.name))) {
      const item = el('li');
      item.dataset.name = d.name;
      item.append(el('span', d.name), el('small', `${d.kind} · ${d.chunks} chunk(s) · ${d.collection}`));
      const remove = /** @type {HTMLButtonElement} */ (el('button', 'Remove'));
      remove.type = 'button';
      remove.addEventListener('click', async () => {
        await li.documents.remove([d.name], { collection: d.collection });
        await refreshList();
      });
      item.append(remove);
      list.append(item);
    }
    const chunks = documents.reduce((n, d) => n + d.chunks, 0);
    if (view.dataset.state !== 'busy') {
      status.textContent = documents.length
        ? `${documents.length} document(s), ${chunks} chunks, stored in this browser.`
        : 'No documents yet.';
    }
    view.dataset.documents = String(documents.length);
  }

  /** @param {File[]} files */
  async function add(files) {
    if (!files.length) return;
    view.dataset.state = 'busy';
    try {
      const report = await li.documents.add(files, { onProgress: (p) => {
        if (p.phase === 'embed') {
          progress.max = p.total;
          progress.value = p.done;
          status.textContent = `Embedding ${p.name}: ${p.done}/${p.total} chunks`;
        } else if (p.phase === 'read' || p.phase === 'store') {
          status.textContent = `${p.phase === 'read' ? 'Reading' : 'Storing'} ${p.name}`;
        }
      } });
      app.docs.reports.push(report);
      progress.max = 1;
      progress.value = 1;
      const skipped = report.skipped.map((s) => `${s.name}: ${s.reason}`).join('; ');
      status.textContent = `Added ${report.added.length}, updated ${report.updated.length}, `
        + `unchanged ${report.unchanged.length} (${report.embedded} chunks embedded)`
        + (skipped ? `. Skipped ${skipped}` : '');
    } catch (err) {
      const e = /** @type {any} */ (err);
      app.docs.errors.push({ code: e?.code ?? 'error', message: e?.message ?? String(err) });
      status.textContent = `Could not add: ${e?.message ?? String(err)}`;
    } finally {
      await refreshList(); // (the report stays in the status line while busy)
      await refreshPrivacy();
      view.dataset.state = 'idle';
    }
  }

  const drop = $('drop');
  drop.addEventListener('dragover', (e) => { e.preventDefault(); drop.classList.add('over'); });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (e) => {
    e.preventDefault();
    drop.classList.remove('over');
    add([...(e.dataTransfer?.files ?? [])]);
  });
  const picker = /** @type {HTMLInputElement} */ ($('doc-files'));
  picker.addEventListener('change', () => { add([...(picker.files ?? [])]); picker.value = ''; });
  $('doc-clear').addEventListener('click', async () => { await li.documents.clear(); await refreshList(); });

  $('doc-ask').addEventListener('submit', async (event) => {
    event.preventDefault();
    const q = /** @type {HTMLTextAreaElement} */ ($('doc-q')).value.trim();
    if (!q) return;
    const out = $('doc-answer');
    out.replaceChildren(el('p', 'Searching your documents…', 'note'));
    view.dataset.state = 'busy';
    try {
      const a = await li.documents.ask(q);
      app.docs.answers.push(a);
      const label = a.mode === 'model'
        ? `Answered by ${a.tier} · ${a.backend}; citations ${a.attributed ? 'added by similarity and ' : ''}checked against the passages`
        : a.note ?? 'extractive answer';
      out.replaceChildren(el('p', label, `label ${a.mode}`), el('div', a.answer || '—', 'answer'));
      for (const s of a.sources) {
        const box = el('section', undefined, 'source');
        box.dataset.n = String(s.n);
        const cites = a.citations.filter((c) => c.n === s.n);
        box.dataset.cited = String(cites.length > 0);
        box.append(el('h3', `[${s.n}] ${s.location}${s.heading ? ` — ${s.heading}` : ''}`),
          marked(s.text, cites));
        out.append(box);
      }
      out.dataset.mode = a.mode;
    } catch (err) {
      const e = /** @type {any} */ (err);
      app.docs.errors.push({ code: e?.code ?? 'error', message: e?.message ?? String(err) });
      out.replaceChildren(el('p', `Could not answer: ${e?.message ?? String(err)}`, 'label'));
    } finally {
      view.dataset.state = 'idle';
      out.dataset.done = String(app.docs.answers.length + app.docs.errors.length);
      await refreshPrivacy();
    }
  });
  view.dataset.state = 'idle';
  await refreshList();
  return refreshList;
}
