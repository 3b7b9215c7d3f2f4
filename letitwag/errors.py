"""The one exception type the CLI turns into a one-line message and a non-zero exit.

Library code raises ``UserInputError`` (or a subclass) for anything the user can fix — a bad
file, a missing column, an unknown model — with a message that names the file/row and says
what to do. Anything else is a bug and keeps its traceback.
"""


class UserInputError(ValueError):
    """Bad input the user can fix; ``str(error)`` is the whole message."""
