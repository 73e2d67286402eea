"""The per-model decision logic, pure: verdicts, episodes and alert policy, performance, the retrain policy,
the label join and the model monitor. Nothing here talks to Kafka, Redis or Prometheus or reads the
environment; every class takes explicit parameters."""
