"""Entry point Bazel's py_test runs: pytest on the test file given as argument.

Bazel runs a Python file as a test; our tests are pytest modules, so every
py_test in BUILD points here with its test file as the argument.
"""

import sys

import pytest

if __name__ == "__main__":
    sys.exit(pytest.main(["-q", "-p", "no:cacheprovider", *sys.argv[1:]]))
