"""Parametrise every test that takes a spec fixture over the OptimizerSpec registry."""

from __future__ import annotations

import pytest

from tests.optim.specs import OPTIMIZERS, SPEC_FIXTURES


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    for fixture, capability in SPEC_FIXTURES.items():
        if fixture not in metafunc.fixturenames:
            continue
        params = [
            pytest.param(
                spec,
                id=spec.name,
                marks=[pytest.mark.slow] if metafunc.function.__name__ in spec.slow_tests else [],
            )
            for spec in OPTIMIZERS
            if capability is None or capability in spec.capabilities
        ]
        metafunc.parametrize(fixture, params)
