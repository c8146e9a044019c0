"""The base of every error a user can fix: the command line prints its one-line message, never a traceback.

It lives apart from the modules that raise it so the command line can catch any of them without importing
those modules (and torch with them) on the ONNX Runtime path.
"""

from __future__ import annotations


class TranslateError(Exception):
    """A problem with the user's input or environment; the message names the file or option and the fix."""

    exit_code = 1
