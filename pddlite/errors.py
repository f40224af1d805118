"""The one exception type that pddlite raises for bad input.

Every message is one line that says what went wrong and what to do about it;
the command-line interface prints it without a traceback.
"""


class PDDLiteError(ValueError):
    """Bad input or an unusable environment, explained in one line."""
