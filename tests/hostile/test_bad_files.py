"""Files that are not what they seem: one line, a distinct exit code, nothing else lost
(hardening §8)."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest

from localinfer.assets.gguf import validate_gguf
from localinfer.errors import BadModelFile
from tests.hostile.cli import one_clean_line, run_cli

pytestmark = pytest.mark.hostile


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "model.gguf"
    os.mkfifo(path)
    return path


@pytest.fixture
def loop(tmp_path: Path) -> Path:
    path = tmp_path / "loop.gguf"
    path.symlink_to(path)
    return path


def test_chat_with_a_fifo_model_is_refused(tmp_path: Path, fifo: Path) -> None:
    result = run_cli(tmp_path, "chat", "-m", str(fifo), "hi", timeout=60)  # used to hang
    assert result.returncode == 5
    assert "FIFO" in one_clean_line(result)


def test_chat_with_a_symlink_loop_is_refused(tmp_path: Path, loop: Path) -> None:
    result = run_cli(tmp_path, "chat", "-m", str(loop), "hi")
    assert result.returncode == 5
    assert "symlink loop" in one_clean_line(result)


@pytest.mark.parametrize(("target", "said"), [
    ("/dev/zero", "character device"),
    ("fifo", "FIFO"),
    ("loop", "symlink loop"),
])
def test_index_add_names_what_the_path_is(tmp_path: Path, fifo: Path, loop: Path,
                                          target: str, said: str) -> None:
    path = {"fifo": str(fifo), "loop": str(loop)}.get(target, target)
    result = run_cli(tmp_path, "index", "add", path, timeout=60,
                     LOCALINFER_INDEX_PATH=str(tmp_path / "index.db"))
    assert result.returncode == 2
    line = one_clean_line(result)
    assert said in line and "no such file" not in line


def test_a_fifo_inside_a_folder_is_skipped_not_waited_on(tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    os.mkfifo(folder / "pipe.txt")
    from localinfer.rag.index import Index
    from localinfer.settings import Settings

    class NoEmbedder:
        id, dim = "none", 3

        def embed(self, texts: list[str]) -> list[list[float]]:
            raise AssertionError("nothing should be embedded")

    with Index(Settings(home=tmp_path), path=tmp_path / "i.db",
               embedder=NoEmbedder()) as index:  # type: ignore[arg-type]
        report = index.add([folder])
    assert report.skipped == [(str(folder / "pipe.txt"), "a FIFO (named pipe)")]


@pytest.mark.integration
def test_undecodable_file_name_is_skipped_and_the_rest_indexed(tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "good.txt").write_text("The boiler is serviced every October.\n")
    bad = os.fsencode(folder) + b"/bad-\xff\xfe.txt"
    with open(bad, "wb") as f:
        f.write(b"A file whose name is not UTF-8.\n")
    result = run_cli(tmp_path, "index", "add", str(folder), "--json", timeout=600,
                     LOCALINFER_INDEX_PATH=str(tmp_path / "index.db"))
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    import json
    report = json.loads(result.stdout)
    assert [Path(p).name for p in report["added"]] == ["good.txt"]
    [skipped] = report["skipped"]
    assert "not valid UTF-8" in skipped["reason"]
    assert "bad-" in skipped["path"]


@pytest.mark.parametrize("name", ["../..", "a/b", "two\nlines", "", "x" * 200, "tab\there"])
def test_pull_name_is_validated(tmp_path: Path, name: str) -> None:
    result = run_cli(tmp_path, "pull", "http://127.0.0.1:9/model.gguf", "--name", name,
                     "--yes")
    assert result.returncode == 2
    assert "bad --name" in one_clean_line(result)


def test_huge_key_length_names_the_key(tmp_path: Path) -> None:
    path = tmp_path / "x.gguf"
    # magic, version 3, 0 tensors, 1 key-value, then a key length of 2^62.
    path.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + struct.pack("<Q", 2 ** 62))
    with pytest.raises(BadModelFile) as info:
        validate_gguf(path)
    assert "key #0" in info.value.message
    assert "key-value count" not in info.value.message
