"""The one error type users see. Each edge (CLI, Gradio, HTTP API) translates it for its audience."""

from __future__ import annotations


class AssistantError(Exception):
    """A failure caused by input, configuration or an unavailable backend, explained for a person.

    `hint` says what to do about it (a flag to pass, a command to run).
    """

    def __init__(self, message: str, *, hint: str | None = None, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        # HTTP status the API edge answers with; 400 = the caller's input, 503 = a backend is down.
        self.status = status

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class CorpusError(AssistantError):
    """A corpus file cannot be read; the message names the file and line."""


class StoreError(AssistantError):
    """The vector store is missing, incompatible, locked or unreachable."""


class FilterError(AssistantError):
    """No paper matches the filters, or the store cannot be filtered."""
