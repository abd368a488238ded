"""Writes tests/fixtures/ops_<family>.h5 for the op test cases of each family.

Usage (from the repository root):
    /opt/oracle-venv/bin/python scripts/oracle/ops.py eltwise gemm norm attention misc

Each family's cases live in scripts/oracle/ops_<family>.py as CASES, mirroring the C table
tests/cases_<family>.c (same names, same params); test_oracle_ops checks the params match.
"""
import importlib
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from oracle_common import write_cases  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main(families):
    for fam in families:
        mod = importlib.import_module("ops_" + fam)
        write_cases(os.path.join(ROOT, "tests", "fixtures", "ops_%s.h5" % fam), mod.CASES)


if __name__ == "__main__":
    main(sys.argv[1:] or ["eltwise"])
