"""The FlinkDeployment state machine, one module per concern; `sync.deployment` runs it."""
