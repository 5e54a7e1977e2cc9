"""The real world's answers read back: vLLM start-up logs, benchmark results, repository calibration records."""
