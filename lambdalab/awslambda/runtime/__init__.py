"""The process host: execution environments (one OS process each, speaking the Runtime API) and what they run on —
the runtime's interpreter and packages, the function's code artifact, the fork server that starts environments, and
the accounting that keeps this machine's limits out of Lambda's numbers."""
