"""The Lambda service: LambdaService (control, invoke, async dispatch), the cold-start leases, destinations."""
