"""Sample workloads the agent can run (see train.py)."""
