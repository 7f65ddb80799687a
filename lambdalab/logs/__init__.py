"""CloudWatch Logs in the local cloud: Lambda's log formats, the log store and its API, Logs Insights, EMF."""
