"""Checks: thin declarations over probes, one module per layer; importing a module registers its checks."""
