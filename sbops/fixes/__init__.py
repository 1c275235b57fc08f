"""Fixes: thin declarations over probes' differences and appliers, one module per layer."""
