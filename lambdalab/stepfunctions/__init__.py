"""Step Functions in the local cloud: moto's executing interpreter, with AWS's limits and checks added around it."""
