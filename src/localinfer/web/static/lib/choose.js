// Which in-browser engine to use. WebLLM (WebGPU) decodes far faster than a CPU engine, but
// only on a real GPU: a fallback adapter (SwiftShader, CPU-emulated, what headless
// Chromium has) is slower than wllama, and WebLLM needs MLC-format weights and per-model
// wasm from its hub. This build does not bundle WebLLM, so `webllmAvailable` is false and
// the answer is wllama, with the reason; the choice itself is tested with stub adapters.

/**
 * @typedef {object} EngineChoice
 * @property {'wllama' | 'webllm'} engine
 * @property {string} reason
 */

/**
 * @param {{gpu?: any, webllmAvailable?: boolean}} [opts] `gpu`: navigator.gpu by default
 * @returns {Promise<EngineChoice>}
 */
export async function chooseEngine(opts = {}) {
  const gpu = 'gpu' in opts ? opts.gpu : /** @type {any} */ (navigator).gpu;
  if (!gpu) return { engine: 'wllama', reason: 'no WebGPU in this browser' };
  let adapter = null;
  try {
    adapter = await gpu.requestAdapter();
  } catch { /* treated as none */ }
  if (!adapter) return { engine: 'wllama', reason: 'no WebGPU adapter' };
  const info = adapter.info ?? {};
  const described = `${info.vendor ?? ''} ${info.architecture ?? ''} ${info.description ?? ''}`;
  if (adapter.isFallbackAdapter || info.isFallbackAdapter || /swiftshader/i.test(described)) {
    return { engine: 'wllama', reason: `the WebGPU adapter is a CPU fallback (${described.trim() || 'fallback'})` };
  }
  if (!opts.webllmAvailable) {
    return { engine: 'wllama', reason: 'a real GPU is present, but WebLLM and its MLC weights are not available to this page' };
  }
  return { engine: 'webllm', reason: `WebGPU adapter ${described.trim() || '(unnamed)'}` };
}
