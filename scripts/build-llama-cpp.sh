#!/usr/bin/env bash
# Build llama.cpp's own llama-server and llama-bench from the sources vendored in the
# llama-cpp-python sdist (the same llama.cpp our embedded engine links), cached under
# ~/.cache keyed by version. Prints the bin directory. Used by integration tests and bench/.
set -euo pipefail
version="${LLAMA_CPP_PYTHON_VERSION:-0.3.36}"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/localinfer/llama.cpp-$version"
bin="$cache/bin"
if [[ -x "$bin/llama-server" && -x "$bin/llama-bench" ]]; then
  echo "$bin"; exit 0
fi
python="${PYTHON:-python3}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$python" -m pip download --quiet --no-deps --no-binary :all: \
  "llama-cpp-python==$version" -d "$work" >&2
tar -xzf "$work"/llama_cpp_python-"$version".tar.gz -C "$work"
src="$work/llama_cpp_python-$version/vendor/llama.cpp"
cmake -S "$src" -B "$work/build" -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF \
  -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
  -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_SERVER=ON -DGGML_NATIVE=ON >&2
cmake --build "$work/build" --target llama-server llama-bench -j "$(nproc)" >&2
mkdir -p "$bin.tmp"
cp "$work/build/bin/llama-server" "$work/build/bin/llama-bench" "$bin.tmp/"
rm -rf "$bin" && mv "$bin.tmp" "$bin"
echo "$bin"
