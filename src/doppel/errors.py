"""The one exception type the CLI turns into a one-line error and exit code 2."""


class DoppelError(Exception):
    """Bad input or a failed precondition; str(e) is shown to the user as one line."""
