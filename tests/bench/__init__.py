"""Benchmarks run by `make bench`: figures reported as ratios to baselines measured in the same run."""
