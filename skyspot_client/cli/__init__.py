"""The command-line tools behind `scripts/checkin`, `scripts/seed` and `scripts/publish-feed`.

Each module has `main(argv=None) -> int` (the exit status) so the scripts stay one-line wrappers
and the logic is typed, linted and testable in-process.
"""
