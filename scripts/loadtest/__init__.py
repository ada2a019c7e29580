"""Load test of the one-machine stack: check-in writes and feed reads together, with locust.

`python -m scripts.loadtest.run` starts `./scripts/run` on ephemeral ports, seeds check-ins, runs
`locustfile.py` headless for a bounded time and user count, checks that every acknowledged write
reached the feed, and prints the results as a Markdown table (docs/benchmarks.md).
"""
