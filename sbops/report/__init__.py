"""Text and JSON renderers of doctor results and fix outcomes."""
