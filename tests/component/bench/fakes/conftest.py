"""The fake-upstream component tests import the anthropic SDK: once, quickly (see
:mod:`tests.unit.bench.fakes.preimport`)."""

from tests.unit.bench.fakes.preimport import preimport

preimport("anthropic", "google.genai")
