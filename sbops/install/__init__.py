"""The installer and the uninstaller: ordered steps over the probes, each observed, planned, applied and verified."""
