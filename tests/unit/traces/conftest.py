"""Fixtures shared by the traces tests."""

from tests.unit.traces.data import data_dir

__all__ = ["data_dir"]
