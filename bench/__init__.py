"""Benchmarks of maildesk next to the limits of its hardware: ``python -m bench [--quick]``.

Each scenario lives in ``bench.scenarios``; ``bench.stack`` starts and stops the servers they use,
``bench.corpus`` makes the mail, ``bench.report`` prints the table and writes the JSON.
"""
