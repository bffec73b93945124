#!/usr/bin/env python3
"""Copy the pinned third-party JavaScript from node_modules into the package.

``npm ci --ignore-scripts`` installs exactly what package-lock.json pins; this script
copies the files the browser tier serves into ``src/localinfer/web/static/vendor/``
(git-ignored) and writes ``vendor/manifest.json`` with each file's size, sha256, the
package version and its licence. The gateway and ``localinfer web export`` serve them
from there, so nothing is ever fetched from a CDN.

    python scripts/build_web.py [--check]   # --check: only verify the copy is current
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
NODE_MODULES = REPO / "node_modules"
VENDOR = REPO / "src" / "localinfer" / "web" / "static" / "vendor"

# package -> (files to copy: source under the package -> target under vendor/, licence)
PACKAGES: dict[str, tuple[dict[str, str], str, str]] = {
    "@wllama/wllama": (
        {
            "esm/index.js": "wllama/index.js",
            "esm/single-thread/wllama.wasm": "wllama/single-thread/wllama.wasm",
            "esm/multi-thread/wllama.wasm": "wllama/multi-thread/wllama.wasm",
            "LICENCE": "wllama/LICENCE",
        },
        "MIT",
        # Why this version: on a 2-core headless Chromium 2.4.0 decoded the bundled
        # SmolLM2-135M at ~0.22x native llama.cpp per CPU-second, 3.13.0 at ~0.14x
        # (its build is ~1.5x slower here), and 2.4.0's first token came 2x sooner.
        "2.4.0 measured fastest on this hardware (see docs/benchmarks.md)",
    ),
    "@huggingface/transformers": (
        {
            # The browser bundle with ONNX Runtime inside (no bare imports to resolve).
            "dist/transformers.min.js": "transformers/transformers.min.js",
            "LICENSE": "transformers/LICENSE",
        },
        "Apache-2.0",
        # 2.17 (@xenova/transformers) cannot open our MiniLM ONNX file (too old a runtime).
        "4.x runs the shipped all-MiniLM-L6-v2 ONNX at cosine 1.0 to Python's fp32 embedder",
    ),
    "onnxruntime-web": (
        {
            # Only the plain CPU (SIMD, threaded) build: the embeddings run on wasm, not
            # WebGPU, so the jsep/asyncify/jspi variants are left out.
            "dist/ort-wasm-simd-threaded.mjs": "transformers/ort-wasm-simd-threaded.mjs",
            "dist/ort-wasm-simd-threaded.wasm": "transformers/ort-wasm-simd-threaded.wasm",
        },
        "MIT",
        "the runtime build @huggingface/transformers 4.3.1 bundles (same version)",
    ),
    "@bjorn3/browser_wasi_shim": (
        {
            # The ES modules as published (they import each other by relative path).
            **{f"dist/{m}.js": f"browser_wasi_shim/{m}.js" for m in (
                "index", "wasi", "wasi_defs", "fd", "fs_mem", "fs_opfs", "strace", "debug")},
            "LICENSE-MIT": "browser_wasi_shim/LICENSE-MIT",
            "LICENSE-APACHE": "browser_wasi_shim/LICENSE-APACHE",
        },
        "MIT OR Apache-2.0",
        "the WASI layer of the browser sandbox (sandbox-worker.js); pure JavaScript",
    ),
}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def pinned(name: str) -> str:
    lock = json.loads((REPO / "package-lock.json").read_text(encoding="utf-8"))
    return str(lock["packages"][f"node_modules/{name}"]["version"])


def build(check: bool) -> int:
    packages = []
    for name, (files, licence, why) in PACKAGES.items():
        root = NODE_MODULES / name
        meta_path = root / "package.json"
        if not meta_path.is_file():
            print(f"build_web: {name} is not installed; run `npm ci --ignore-scripts`",
                  file=sys.stderr)
            return 1
        version = json.loads(meta_path.read_text(encoding="utf-8"))["version"]
        if version != pinned(name):
            print(f"build_web: node_modules has {name} {version}, package-lock.json pins "
                  f"{pinned(name)}; run `npm ci --ignore-scripts`", file=sys.stderr)
            return 1
        entries = []
        for source, target in files.items():
            src, dst = root / source, VENDOR / target
            digest = sha256(src)
            if not check:
                dst.parent.mkdir(parents=True, exist_ok=True)
                if not dst.is_file() or sha256(dst) != digest:
                    shutil.copyfile(src, dst)
            elif not dst.is_file() or sha256(dst) != digest:
                print(f"build_web: {dst} is missing or stale", file=sys.stderr)
                return 1
            entries.append({"path": target, "bytes": src.stat().st_size, "sha256": digest})
        packages.append({"name": name, "version": version, "license": licence,
                         "why": why, "files": entries})
    manifest = {"generated_by": "scripts/build_web.py", "packages": packages}
    text = json.dumps(manifest, indent=1, sort_keys=True) + "\n"
    target = VENDOR / "manifest.json"
    if check:
        if not target.is_file() or target.read_text(encoding="utf-8") != text:
            print(f"build_web: {target} is missing or stale", file=sys.stderr)
            return 1
        return 0
    if not target.is_file() or target.read_text(encoding="utf-8") != text:
        target.write_text(text, encoding="utf-8")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="verify only, copy nothing")
    return build(parser.parse_args().check)


if __name__ == "__main__":
    sys.exit(main())
