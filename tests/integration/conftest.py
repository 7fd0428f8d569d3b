import pytest

from harness import Daemon


@pytest.fixture
def daemon():
    d = Daemon().start()
    yield d
    rc = d.stop()
    d.close()
    assert rc == 0, "serve did not exit cleanly on SIGTERM"
