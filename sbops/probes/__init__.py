"""Probes: observe a resource (I/O), compute its desired state and the difference (pure), apply changes."""
