"""The fake-upstream unit tests import the anthropic SDK: once, quickly (see preimport)."""

from tests.unit.bench.fakes.preimport import preimport

preimport("anthropic")
