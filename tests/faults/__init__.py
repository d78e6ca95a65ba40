import pytest

# Detailed assertion messages from the suite's shared checks, as in its test modules.
pytest.register_assert_rewrite("tests.faults.checks", "tests.faults.harness")
