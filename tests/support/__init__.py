"""Helpers the test modules share: fixtures' machinery, data factories and scenarios. Test modules import
from here and never from each other (tests/test_structure.py checks it)."""
