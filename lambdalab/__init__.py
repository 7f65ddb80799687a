"""The Lambda concurrency lab: the experiment stack's local cloud, and the cold-start analysis."""

__version__ = "0.1.0"
