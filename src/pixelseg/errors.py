"""The one exception type meant for users: the CLI prints its message in one line and exits 2."""


class PixelsegError(Exception):
    """A problem with the user's input (file, key, value), with a message that says what to do.

    Raise it with the offending file or key in the message, e.g.
    ``PixelsegError(f"{path}: mask is 360x480 but image is 720x960")``.
    """
