"""Benchmark harness, device fingerprints, Jetson power sampling, claims check, reports and the main pipeline."""
