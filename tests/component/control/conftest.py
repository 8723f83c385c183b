"""Control fixtures for these tests (shared with other folders)."""

from tests.support.control_fixtures import api, control, make_control

__all__ = ["api", "control", "make_control"]
