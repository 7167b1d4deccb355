import pytest


@pytest.fixture
def sentinel(tmp_path):
    """Path a payload would create if it ran; the test fails if it exists at the end."""
    path = tmp_path / "SENTINEL-payload-ran"
    yield path
    assert not path.exists(), "a payload ran: a reader executed code from a file"
