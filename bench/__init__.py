"""Benchmarks: scripts that print figures for the README, none of them part of the test suite.

Run each as a module from the repository root, with the project's virtualenv:

    .venv/bin/python -m bench.overhead --help
    .venv/bin/python -m bench.ingest --mb 200

Each script's docstring says what it measures and how to run a quicker, smaller form. The real
ShareGPT sample is read from ../shared/data (most take --shared or --sample to point elsewhere).
"""
