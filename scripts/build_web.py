#!/usr/bin/env python3
"""Copy the pinned third-party JavaScript from node_modules into the package.

``npm ci --ignore-scripts`` installs exactly what package-lock.json pins; this script
copies the files the browser tier serves into ``src/localinfer/web/static/vendor/``
(git-ignored) and writes ``vendor/manifest.json`` with each file's size, sha256, the
package version and its licence. Every file must have the sha256 pinned below: a
different byte fails the build. The gateway and ``localinfer web export`` serve them
from there, so nothing is ever fetched from a CDN.

    python scripts/build_web.py            # copy from node_modules (after `npm ci`)
    python scripts/build_web.py --check    # verify vendor/ against the pins; no node_modules
    python scripts/build_web.py --ensure   # --check, else `npm ci` (when needed) and copy:
                                           # the package build's step (setup.py)

Only the standard library: setup.py runs it in a bare build environment.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
NODE_MODULES = REPO / "node_modules"
VENDOR = REPO / "src" / "localinfer" / "web" / "static" / "vendor"
NPM_CI = ("npm", "ci", "--ignore-scripts", "--prefer-offline", "--no-audit", "--no-fund",
          "--loglevel=error")

# package -> (files: source under the package -> (target under vendor/, sha256), licence, why)
PACKAGES: dict[str, tuple[dict[str, tuple[str, str]], str, str]] = {
    "@wllama/wllama": (
        {
            "esm/index.js": (
                "wllama/index.js",
                "08e0fad5c9efdf4414ca2e27d0d8d5bdfa54d91a8054b40d9d9c90c9ce870b9d"),
            "esm/single-thread/wllama.wasm": (
                "wllama/single-thread/wllama.wasm",
                "aced0c759f668e17d618114b8688bf55b32289dbdbd08b6e3254b0bc75838ad5"),
            "esm/multi-thread/wllama.wasm": (
                "wllama/multi-thread/wllama.wasm",
                "f69f292f06d9c5c63ac447aac768c3d508fe7a56f0a7926bd12cc33370bc627d"),
            "LICENCE": (
                "wllama/LICENCE",
                "5866e3bd7e3cbd3f7c8bea6efd8a1e7fa7cc8de68c30f428aff7c6584a0fb720"),
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
            "dist/transformers.min.js": (
                "transformers/transformers.min.js",
                "8d6716d9086f57c30a4bf367dba61b887593573c770c454465e8019b2703e743"),
            "LICENSE": (
                "transformers/LICENSE",
                "cfc7749b96f63bd31c3c42b5c471bf756814053e847c10f3eb003417bc523d30"),
        },
        "Apache-2.0",
        # 2.17 (@xenova/transformers) cannot open our MiniLM ONNX file (too old a runtime).
        "4.x runs the shipped all-MiniLM-L6-v2 ONNX at cosine 1.0 to Python's fp32 embedder",
    ),
    "onnxruntime-web": (
        {
            # Only the plain CPU (SIMD, threaded) build: the embeddings run on wasm, not
            # WebGPU, so the jsep/asyncify/jspi variants are left out.
            "dist/ort-wasm-simd-threaded.mjs": (
                "transformers/ort-wasm-simd-threaded.mjs",
                "c57ca56328877353a575e51bbca6f18450027d6c9bf2307a2cb2c41363b4de9f"),
            "dist/ort-wasm-simd-threaded.wasm": (
                "transformers/ort-wasm-simd-threaded.wasm",
                "06ba057753da3847e4c24f02d91ab133455b0817c69a44993a9a53a2146df9e3"),
        },
        "MIT",
        "the runtime build @huggingface/transformers 4.3.1 bundles (same version)",
    ),
    "@bjorn3/browser_wasi_shim": (
        {
            # The ES modules as published (they import each other by relative path).
            f"dist/{module}.js": (f"browser_wasi_shim/{module}.js", digest)
            for module, digest in {
                "index": "7e2fd52ee3f728bb0b1d6e449724e0f13e3d586bb25bde6e02a66366175b5605",
                "wasi": "168eb977a826f75ab0c39f9322f78cc58dbd5b233019ad1d6a7e940af8a7c4aa",
                "wasi_defs": "0db0f42ba330749a7b05095ea1fd0ff63fd2b30e84cead30fe4c28359d15f194",
                "fd": "9e82e1fc1bfd3e3573f64349dc42b4b624ed61d24e5c553f2bb4d041444f166c",
                "fs_mem": "85dbc9e0ee784d9ff8b55452644e00bf7058e32355aab974f8b71d7d85772324",
                "fs_opfs": "4b96aaeb5ac5986cf802cbf22b975c656682d22a38248160c96fc2ded5644869",
                "strace": "ece435d3784d928d02bff4d015b7cb686f8c06de8536ff9f8ebc38a8f403a3be",
                "debug": "a91848ee180529e2a60c05dfb9584cad19cd4e1c6f391fdb76a938bcae4c0328",
            }.items()
        } | {
            "LICENSE-MIT": (
                "browser_wasi_shim/LICENSE-MIT",
                "23f18e03dc49df91622fe2a76176497404e46ced8a715d9d2b67a7446571cca3"),
            "LICENSE-APACHE": (
                "browser_wasi_shim/LICENSE-APACHE",
                "c71d239df91726fc519c6eb72d318ec65820627232b2f796219e87dcf35d0ab4"),
        },
        "MIT OR Apache-2.0",
        "the WASI layer of the browser sandbox (sandbox-worker.js); pure JavaScript",
    ),
}


class BuildError(Exception):
    """One line saying what is missing or wrong, and the fix."""


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def pins() -> dict[str, str]:
    """target under vendor/ -> pinned sha256, for every vendored file."""
    return {target: digest for files, _, _ in PACKAGES.values()
            for target, digest in files.values()}


def pinned(name: str) -> str:
    lock = json.loads((REPO / "package-lock.json").read_text(encoding="utf-8"))
    return str(lock["packages"][f"node_modules/{name}"]["version"])


def manifest_text() -> str:
    """vendor/manifest.json as the pins and package-lock.json define it."""
    packages = [{"name": name, "version": pinned(name), "license": licence, "why": why,
                 "files": [{"path": target, "bytes": (VENDOR / target).stat().st_size,
                            "sha256": digest} for target, digest in files.values()]}
                for name, (files, licence, why) in PACKAGES.items()]
    manifest = {"generated_by": "scripts/build_web.py", "packages": packages}
    return json.dumps(manifest, indent=1, sort_keys=True) + "\n"


def problem() -> str | None:
    """Why vendor/ is not the pinned set (None when it is); reads no node_modules."""
    for target, digest in pins().items():
        path = VENDOR / target
        if not path.is_file():
            return f"{path.relative_to(REPO)} is missing"
        if sha256(path) != digest:
            return f"{path.relative_to(REPO)} does not have its pinned sha256"
    manifest = VENDOR / "manifest.json"
    if not manifest.is_file() or manifest.read_text(encoding="utf-8") != manifest_text():
        return f"{manifest.relative_to(REPO)} is missing or stale"
    return None


def copy() -> None:
    """node_modules -> vendor/, each file checked against its pin, then the manifest."""
    for name, (files, _, _) in PACKAGES.items():
        root = NODE_MODULES / name
        meta_path = root / "package.json"
        if not meta_path.is_file():
            raise BuildError(f"{name} is not installed; run `npm ci --ignore-scripts`")
        version = json.loads(meta_path.read_text(encoding="utf-8"))["version"]
        if version != pinned(name):
            raise BuildError(f"node_modules has {name} {version}, package-lock.json pins "
                             f"{pinned(name)}; run `npm ci --ignore-scripts`")
        for source, (target, digest) in files.items():
            src, dst = root / source, VENDOR / target
            if sha256(src) != digest:
                raise BuildError(f"{src.relative_to(REPO)} has sha256 {sha256(src)}, "
                                 f"scripts/build_web.py pins {digest} (update the pin only "
                                 "if package-lock.json changed on purpose)")
            dst.parent.mkdir(parents=True, exist_ok=True)
            if not dst.is_file() or sha256(dst) != digest:
                shutil.copyfile(src, dst)
    manifest, text = VENDOR / "manifest.json", manifest_text()
    if not manifest.is_file() or manifest.read_text(encoding="utf-8") != text:
        manifest.write_text(text, encoding="utf-8")


def node_modules_current() -> bool:
    try:
        return all(json.loads((NODE_MODULES / name / "package.json").read_text(
            encoding="utf-8"))["version"] == pinned(name) for name in PACKAGES)
    except (OSError, ValueError, KeyError):
        return False


def ensure() -> None:
    """The package build's step: vendor/ as pinned, installing node_modules if needed."""
    if problem() is None:
        return
    if not node_modules_current():
        npm = shutil.which("npm")
        if npm is None:
            raise BuildError("the browser tier's files (src/localinfer/web/static/vendor/) "
                             "are not built and npm is not installed: install Node.js and "
                             "npm, or build from localinfer's sdist (it carries them)")
        print("build_web: installing the pinned JavaScript (npm ci --ignore-scripts)",
              file=sys.stderr)
        done = subprocess.run([npm, *NPM_CI[1:]], cwd=REPO, stdout=sys.stderr, check=False)
        if done.returncode != 0:
            raise BuildError(f"`{' '.join(NPM_CI)}` failed (exit {done.returncode}); "
                             "its output is above")
    copy()
    if (left := problem()) is not None:
        raise BuildError(left)


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="verify only, copy nothing")
    mode.add_argument("--ensure", action="store_true",
                      help="verify; if that fails, npm ci (when needed) and copy")
    args = parser.parse_args()
    try:
        if args.check:
            if (found := problem()) is not None:
                raise BuildError(f"{found}; run `npm ci --ignore-scripts && "
                                 "python scripts/build_web.py`")
        elif args.ensure:
            ensure()
        else:
            copy()
    except BuildError as exc:
        print(f"build_web: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
