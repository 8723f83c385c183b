"""Control fixtures for tier1 tests that need config pushed by a real control."""

from tests.support.control_fixtures import make_control

__all__ = ["make_control"]
