"""API Gateway REST APIs served locally as Lambda proxy integrations."""
