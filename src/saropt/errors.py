"""User-facing errors. The CLI prints their message (no traceback) and exits with status 2."""


class SaroptError(Exception):
    """Bad input or a failed precondition; the message names the file or key and what is wrong.

    The ``saropt`` command line prints it as ``saropt: error: <message>`` and exits with 2.
    """


class DataError(SaroptError):
    """A dataset file or folder that cannot be used as it is."""
