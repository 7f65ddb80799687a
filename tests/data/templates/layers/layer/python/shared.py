"""Shared code of the layer test template."""
