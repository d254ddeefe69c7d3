"""Fulliautomatix benchmarks (issue 6): `python -m benchmarks [P1 ...] [--full]`; see __main__."""
