"""Application Auto Scaling target tracking, executed locally for DynamoDB and Lambda provisioned concurrency."""
