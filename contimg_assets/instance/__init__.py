"""What talks to a Dagster instance from outside a run: the stream runner (demo, e2e tests, drills) and
reprocess submission. The engine (``contimg``) never imports this."""
