"""flink-sync benchmark: `python -m bench` (see bench/README.md)."""
