"""QLP failover: provider liveness and job failover decisions."""
