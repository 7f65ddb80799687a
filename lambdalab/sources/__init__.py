"""Every way a function gets called besides a direct Invoke: SNS, EventBridge, Scheduler, S3 (asynchronous, through
the Lambda service's async queue), Kinesis and DynamoDB streams (event source mappings), and the shared event-pattern
matcher that EventBridge rules, SNS filter policies and Lambda filter criteria use."""
