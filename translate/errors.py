"""Every error a user can fix, in one place: the command line prints its one-line message, never a traceback.

They live apart from the modules that raise them so the command line can catch any of them without importing
those modules (and torch with them) on the ONNX Runtime path, and so no module imports another only for its
error class. Each message names the file or option and the fix.
"""

from __future__ import annotations

from pathlib import Path


class TranslateError(Exception):
    """A problem with the user's input or environment; the message names the file or option and the fix.

    Its exit code is 1, a run that failed (unreadable data, a damaged file, a failed check), unless the class is a
    `UsageError`.
    """

    exit_code = 1


class UsageError(TranslateError, ValueError):
    """The command line asks for what cannot be: a path that does not exist, an unknown name or value, options
    that exclude each other, a model of the wrong kind for the command. Exit code 2, as for the command line's own
    usage errors, since the fix is to change the command."""

    exit_code = 2


class ConfigError(UsageError):
    """A configuration value or key that cannot be used; the message says which and how to fix it."""


class DeviceError(UsageError, RuntimeError):
    """The requested device cannot be used here."""


class BackendError(DeviceError):
    """The requested inference backend is not installed here, or cannot run the model or device asked for."""


class DataError(TranslateError, ValueError):
    """Unusable training data; the message names the folder and the fix."""


class DataArgumentError(UsageError, DataError):
    """DATA, --domain-a or --domain-b is missing or names no folder: a usage error, unlike data that is there but
    cannot be trained on."""


class DatasetError(TranslateError):
    """A dataset problem with a one-line, user-facing message that says what went wrong and the fix."""


class ArchiveLimitError(DatasetError):
    """An archive refused for what it would expand to (a likely zip bomb): ``problem`` plus ``fix``.

    The two are kept apart so a caller that removes the archive itself can say so in place of the default fix.
    """

    def __init__(self, problem: str, fix: str = "Delete the archive if you do not trust it.") -> None:
        super().__init__(problem, fix)  # both in args, so pickling rebuilds the same error
        self.problem = problem

    def __str__(self) -> str:
        return " ".join(self.args)


class CheckpointError(TranslateError, RuntimeError):
    """A checkpoint that cannot be read or does not fit; the message names the file."""


class ModelError(UsageError):
    """A model that cannot be found or used as asked (another kind, a direction it lacks); the message names it
    and the fix."""


class ExportedModelError(TranslateError):
    """An exported model (an .onnx file or an OpenVINO IR) that a backend cannot load or use; the message says why
    and what to do."""


class OnnxModelError(ExportedModelError):
    """An .onnx file that translate cannot use; the message says why and what to do."""


class OpenVinoModelError(ExportedModelError):
    """A model file (.onnx or IR) that OpenVINO cannot load, run or derive a graph from as asked; the message says
    why and what to do."""


class ExportError(TranslateError):
    """An export that cannot be made or that failed its parity check."""


class ApplyError(UsageError):
    """Unusable input or output location; the message names the path and the fix."""


class SamplingError(UsageError):
    """Bad sampling request; the message says what to change."""


class QuantizationError(TranslateError, ValueError):
    """The model cannot be converted as asked (e.g. no calibration data); the message says what to supply."""


class ImageDecodeError(TranslateError):
    """An image file exists but could not be decoded. ``str()`` is ``"<path>: <reason>"`` on one line."""

    def __init__(self, path: Path | str, reason: str) -> None:
        self.path = Path(path)
        self.reason = " ".join(reason.split()) or "could not decode image"
        super().__init__(f"{self.path}: {self.reason}")

    def __reduce__(self) -> tuple[type[ImageDecodeError], tuple[Path, str]]:
        # Default pickling would call cls(message) and fail; DataLoader workers/process pools pickle errors.
        return (type(self), (self.path, self.reason))


class ImageTooLargeError(ImageDecodeError):
    """An image whose header declares more pixels than allowed; skipped and counted like an undecodable one."""


class RunLockedError(TranslateError, RuntimeError):
    """Another process is training in the run folder; the message names it (PID, host, since when) and the fix."""
