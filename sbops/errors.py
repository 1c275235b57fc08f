"""Errors the user can fix (bad flag, bad file): the CLI prints them as one line and exits 2."""


class UsageError(Exception):
    """A problem with the user's input: a flag, the config file, the credentials file."""


class NeedsCredentials(Exception):
    """A probe needs a password that no credentials file provides."""
