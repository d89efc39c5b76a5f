"""Why a backend could not produce a reply.

The reply pipeline catches `BackendError` (every class here) and sends the FAQ-based fallback reply instead; `kind`
is the short machine-readable reason recorded with the message.
"""

from __future__ import annotations


class BackendError(Exception):
    """A backend failed to produce a reply (crash, bad response from a server, ...)."""

    kind = "error"

    def __init__(self, message: str, *, backend: str = "") -> None:
        super().__init__(message)
        self.backend = backend


class BackendUnavailable(BackendError):
    """The backend cannot run here: a package, a model directory or compiled artifacts are missing."""

    kind = "unavailable"


class BackendTimeout(BackendError):
    """No reply (or no next token) within LLM_GENERATION_TIMEOUT."""

    kind = "timeout"


class BackendEmptyOutput(BackendError):
    """The model stopped before producing any visible text."""

    kind = "empty"


class BackendOutOfMemory(BackendError):
    """The device or host ran out of memory during generation."""

    kind = "oom"


class PromptTooLong(BackendError):
    """Even the system text and the customer's message, cut to the minimum, do not fit the context."""

    kind = "prompt_too_long"


class UnsafePrompt(BackendError):
    """A rendered prompt failed its structure check (a control token where the format has none): never sent."""

    kind = "unsafe_prompt"
