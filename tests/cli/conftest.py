"""Shared helpers for the CLI tests: the built binary, and a runner."""
import os
import pathlib
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
BUILD = pathlib.Path(os.environ.get("WB_BUILD", ROOT / "build"))
CLI = BUILD / "weightbridge"
DATA = ROOT / "tests" / "data"


@pytest.fixture(scope="session")
def cli():
    assert CLI.exists(), f"{CLI} not built (run make)"

    def run(*args, check=None):
        p = subprocess.run([str(CLI), *map(str, args)], capture_output=True,
                           text=True, timeout=120)
        if check is not None:
            assert p.returncode == check, (p.returncode, p.stdout, p.stderr)
        return p
    return run
