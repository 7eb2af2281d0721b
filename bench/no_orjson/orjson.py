"""Put this folder first on PYTHONPATH to run the hooks as `pip install .` (no test extras) installs them:
`import orjson` fails, and hooks/app.py falls back to the stdlib json module."""
raise ImportError("orjson hidden by bench/no_orjson (stdlib json run)")
