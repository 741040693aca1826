"""deadir's benchmarks: each speed claim is a ratio of two timings taken in one process run.

Run with ``nox -s bench`` or ``python -m benchmarks`` (options: ``--help``). Results go to
``build/bench/results.json`` and ``build/bench/results.md``; nothing here asserts a timing.
"""
