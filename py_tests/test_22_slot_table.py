"""Our bookkeeping unit-tested without a model: the slot policy (c_src/core/slot_table.h)
and the task and session registries (task_registry.h, session_registry.h). Builds and runs
c_src/tests/slot_table_test.cpp and registry_test.cpp."""
import pytest

from helpers import ROOT, sh


@pytest.mark.parametrize("target,min_cases", [("slot_table_test", 9), ("registry_test", 13)])
def test_unit_tests_pass(target, min_cases):
    sh(["cmake", "--build", str(ROOT / "build"), "--target", target])
    out = sh([str(ROOT / "build" / "bin" / target)])
    lines = out.splitlines()
    assert lines[-1] == f"{len(lines) - 1} cases passed" and len(lines) - 1 >= min_cases, out
