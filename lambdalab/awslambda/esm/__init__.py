"""Event source mappings: the mappings and their SQS pollers."""
