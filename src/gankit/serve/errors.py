"""What a client did wrong (or could not be served), with the HTTP status that says so.

Every request error is answered with ``{"error": message}`` by the HTTP API and shown as a one-line
message on the page; the server keeps serving."""

from __future__ import annotations

from gankit.errors import GankitError


class RequestError(GankitError):
    """One request cannot be served; ``status`` is its HTTP status code."""

    status = 400


class BadUpload(RequestError):
    """Not an image, a truncated one, or a malformed request."""

    status = 400


class UnknownModel(RequestError):
    status = 404


class TooLarge(RequestError):
    """Over the upload size or the pixel limit."""

    status = 413


class Unprocessable(RequestError):
    """Well-formed but impossible: a direction the model does not translate, a digit outside 0–9…"""

    status = 422


class Busy(RequestError):
    """The queue is full: try again later."""

    status = 503
