"""Comparisons, pure: lock against lock (`diff`), lock against what vLLM really did (`verify`)."""
