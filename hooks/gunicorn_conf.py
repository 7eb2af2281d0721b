"""gunicorn settings for `flink-sync serve` (overridable with the usual GUNICORN_CMD_ARGS)."""
import os

bind = os.environ.get("FLINK_SYNC_BIND", "127.0.0.1:8080")
workers = int(os.environ.get("FLINK_SYNC_WORKERS", "2"))
# Threads let one worker overlap Flink REST waits; the core itself is CPU-bound and quick.
threads = int(os.environ.get("FLINK_SYNC_THREADS", "4"))
worker_class = "gthread"
# Metacontroller's hook timeout is 10 s; never hold a request longer than that.
timeout = 30
graceful_timeout = 10
keepalive = 75
accesslog = None
errorlog = "-"
loglevel = os.environ.get("FLINK_SYNC_LOG_LEVEL", "info")
max_requests = 100_000
max_requests_jitter = 1_000
