"""Fixtures for the integration tests (helpers live in wbd.py)."""
import pytest

from wbd import Daemon, make_slow, make_small


@pytest.fixture(scope="session")
def small_npz(tmp_path_factory):
    return make_small(tmp_path_factory.mktemp("data") / "small.npz")


@pytest.fixture(scope="session")
def slow_archive(tmp_path_factory):
    return make_slow(tmp_path_factory.mktemp("slow") / "slow.npz")


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    d = Daemon(tmp_path_factory.mktemp("daemon"), ["--workers", "2", "--max-ratio", "100000"]).start()
    yield d
    assert d.stop() == 0
