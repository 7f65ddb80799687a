"""What an execution environment runs on: the runtime's interpreter and packages, the function's code artifact, the
fork server that starts environments, and the accounting that keeps this machine's limits out of Lambda's numbers."""
