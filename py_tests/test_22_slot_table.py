"""The slot policy (c_src/core/slot_table.h) unit-tested without a model: builds and runs
c_src/tests/slot_table_test.cpp."""
from helpers import ROOT, sh


def test_slot_table_unit_tests_pass():
    sh(["cmake", "--build", str(ROOT / "build"), "--target", "slot_table_test"])
    out = sh([str(ROOT / "build" / "bin" / "slot_table_test")])
    lines = out.splitlines()
    assert lines[-1] == f"{len(lines) - 1} cases passed" and len(lines) >= 9, out
