import pytest

from tests.integrations.fake_target import FakeTarget


@pytest.fixture
def fake_target():
    server = FakeTarget().start()
    yield server
    server.stop()
