"""DynamoDB capacity locally: capacity units as DynamoDB counts them, burst, throttling and metrics."""
