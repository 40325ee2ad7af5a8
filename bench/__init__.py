"""Benchmarks (``make bench``): figures printed, nothing asserted."""
