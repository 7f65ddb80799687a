"""The Lambda HTTP API: the route table, request parsing and AWS error shapes; every handler only calls the service."""
