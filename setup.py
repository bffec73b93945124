"""The package build's one extra step: the browser tier's pinned JavaScript.

Metadata lives in pyproject.toml; this file only hooks setuptools so that every way of
building localinfer (``pip install .``, ``pip install git+URL``, ``python -m build``)
carries ``src/localinfer/web/static/vendor/``: before the wheel's files are collected
and before the sdist's file list is made, ``scripts/build_web.py --ensure`` verifies
those files against their pinned sha256s and, when they are missing, runs
``npm ci --ignore-scripts`` and copies them. The sdist carries them (MANIFEST.in), so
building from it needs no npm. Without npm and without the files the build stops with
one line saying so — never a package whose /ui/ cannot load its engine.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.command.sdist import sdist

HERE = Path(__file__).resolve().parent


def ensure_vendor() -> None:
    done = subprocess.run([sys.executable, str(HERE / "scripts" / "build_web.py"),
                           "--ensure"], cwd=HERE, check=False)
    if done.returncode != 0:
        raise SystemExit(done.returncode)  # build_web.py printed the one line


class BuildPy(build_py):
    def run(self) -> None:
        # An editable install serves the source tree, which ./dev fills: no npm here.
        if not self.editable_mode:
            ensure_vendor()
            # data_files is computed lazily and may have been listed before the files
            # existed (egg_info runs first): list it again.
            self.__dict__.pop("data_files", None)
        super().run()


class Sdist(sdist):
    def run(self) -> None:
        ensure_vendor()  # before egg_info makes the file list
        super().run()


setup(cmdclass={"build_py": BuildPy, "sdist": Sdist})
