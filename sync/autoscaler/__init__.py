"""The job autoscaler (Apache's FLIP-271), pure: `config` (the keys), `records` (observed metrics, the window, the
state and its ConfigMap encoding), `sampling`, `evaluate` (rates), `decide` (parallelisms), `scaler` (one cycle),
`realize` (overrides into the Flink configuration and the resource-requirements body)."""
