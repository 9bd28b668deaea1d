"""Benchmarks of the s2-srgan pipeline and their recorded results (``make bench``).

Run ``python -m bench --help`` for the workloads; results land in ``bench/results/*.json`` and
the tables in ``bench/RESULTS.md``.
"""
