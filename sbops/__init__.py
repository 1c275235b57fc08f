"""sbops: install, diagnose, repair and monitor a StackBill POC server."""

__version__ = "0.1.0"
