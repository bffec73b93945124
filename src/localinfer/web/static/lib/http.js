// OpenAI-compatible chat over fetch: one request helper, SSE parsed by hand (no deps).
import { Aborted, BackendError } from './errors.js';

/**
 * GET a URL with a timeout; resolves to the Response or null when unreachable.
 * @param {string} url
 * @param {number} timeoutMs
 * @param {RequestInit} [init]
 * @returns {Promise<Response | null>}
 */
export async function probe(url, timeoutMs, init = {}) {
  const ctrl = new AbortController();
  const timer = setTimeout(() => ctrl.abort(), timeoutMs);
  try {
    return await fetch(url, { ...init, signal: ctrl.signal, cache: 'no-store', credentials: 'omit' });
  } catch {
    return null;
  } finally {
    clearTimeout(timer);
  }
}

/**
 * POST a chat request; the Response once headers arrived (errors raised as BackendError).
 * @param {string} baseUrl ends in /v1
 * @param {object} body
 * @param {{headers?: Record<string, string>, signal?: AbortSignal}} opts
 * @returns {Promise<Response>}
 */
export async function postChat(baseUrl, body, opts) {
  let response;
  try {
    response = await fetch(`${baseUrl.replace(/\/$/, '')}/chat/completions`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', ...(opts.headers ?? {}) },
      body: JSON.stringify(body),
      signal: opts.signal,
      credentials: 'omit',
      cache: 'no-store',
    });
  } catch (err) {
    if (opts.signal?.aborted) throw new Aborted();
    throw new BackendError(`${baseUrl} unreachable: ${String(err)}`);
  }
  if (!response.ok) {
    let detail = '';
    try {
      const data = await response.json();
      detail = data?.error?.message ?? (typeof data?.error === 'string' ? data.error : '');
    } catch { /* not JSON */ }
    throw new BackendError(`${baseUrl} answered ${response.status}${detail ? `: ${detail}` : ''}`,
      response.status);
  }
  return response;
}

/**
 * The `data:` payloads of a server-sent-events body, parsed as JSON, until `[DONE]`.
 * @param {Response} response
 * @param {AbortSignal} [signal]
 * @returns {AsyncGenerator<any>}
 */
export async function* sseJson(response, signal) {
  if (!response.body) return;
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  try {
    while (true) {
      let read;
      try {
        read = await reader.read();
      } catch (err) {
        if (signal?.aborted) throw new Aborted();
        throw new BackendError(`stream broke: ${String(err)}`);
      }
      if (read.done) break;
      buffer += decoder.decode(read.value, { stream: true });
      let cut;
      while ((cut = buffer.search(/\r?\n\r?\n/)) >= 0) {
        const event = buffer.slice(0, cut);
        buffer = buffer.slice(cut).replace(/^\r?\n\r?\n/, '');
        const data = event.split(/\r?\n/).filter((l) => l.startsWith('data:'))
          .map((l) => l.slice(5).trimStart()).join('\n');
        if (!data) continue;
        if (data === '[DONE]') return;
        const parsed = JSON.parse(data);
        if (parsed?.error) throw new BackendError(String(parsed.error.message ?? parsed.error));
        yield parsed;
      }
    }
  } finally {
    reader.releaseLock();
  }
}
