"""Shared fixtures: one DigitShift cache per test session, the repository root, a CLI runner."""
import os, subprocess, sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session", autouse=True)
def augkd_cache(tmp_path_factory):
    "Keep the tests' dataset and teacher cache out of the user's cache directory."
    path = os.environ.get("AUGKD_TEST_CACHE") or str(tmp_path_factory.mktemp("augkd-cache"))
    os.environ["AUGKD_CACHE"] = path
    return Path(path)


@pytest.fixture
def cli(tmp_path):
    "Run the installed `augkd` console script in `tmp_path`; returns the CompletedProcess."
    def run(*args, timeout=300):
        return subprocess.run(["augkd", *map(str, args)], cwd=tmp_path, capture_output=True, text=True,
                              timeout=timeout, env=os.environ.copy())
    return run
