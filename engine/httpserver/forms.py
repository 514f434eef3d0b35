"""Reading a request's form: within a time limit, and with every way a body can be unreadable answered 4xx.

Both the API and the status webhook read their parameters through :func:`read_form`, so a bad gzip
``Content-Encoding``, a truncated or mislabelled body, a broken multipart or a body that never arrives
gets the same clean answer, never an unhandled aiohttp error with a traceback in the log.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from dataclasses import dataclass, field

from aiohttp import BadContentDispositionHeader, BadContentDispositionParam, web
from aiohttp.http import HttpProcessingError

__all__ = ["Form", "UnreadableBody", "Upload", "read_form"]


@dataclass(frozen=True, slots=True)
class Upload:
    """An uploaded file the caller asked to keep: its name as the client gave it, and its bytes."""

    filename: str
    data: bytes = field(repr=False)


class Form(dict[str, str]):
    """A request's text fields (name -> value); the uploads asked for are in :attr:`files` (name -> Upload)."""

    def __init__(self, fields: dict[str, str] | None = None, files: dict[str, Upload] | None = None) -> None:
        super().__init__(fields or {})
        self.files: dict[str, Upload] = files or {}


class UnreadableBody(Exception):
    """The request's body could not be read as a form; ``status`` (400, or 408 when it did not arrive in
    time) and ``message`` are the answer. The rest of the body is not read: answer with Connection: close."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


async def read_form(request: web.Request, *, timeout: float, uploads: Collection[str] = ()) -> Form:
    """The request's form fields (URL-encoded or multipart), read within *timeout* seconds.

    File uploads are left out (and their spooled files closed), except those named in *uploads*, which are
    kept in the form's ``files``. Raises :class:`UnreadableBody`.
    """
    try:
        async with asyncio.timeout(timeout):
            form = await request.post()
    except TimeoutError:  # a client that promised a body and never sent it must not hold us forever
        raise UnreadableBody(408, f"the request body did not arrive within {timeout:g} s") from None
    except web.RequestPayloadError:  # a Content-Encoding the body does not match, a truncated chunk
        # aiohttp's parser has already given this body up; mark its stream ended, or aiohttp reads it again
        # after our answer (to drain the connection), meets the same error and logs it as unhandled.
        request.content.feed_eof()
        raise UnreadableBody(400, "the request body cannot be read (bad encoding or incomplete)") from None
    except ConnectionError:  # the client went away mid-body; nobody will read the answer
        raise UnreadableBody(400, "the connection closed before the whole request body arrived") from None
    except UnicodeDecodeError:
        raise UnreadableBody(400, "the request body is not valid UTF-8") from None
    except (ValueError, LookupError, HttpProcessingError, BadContentDispositionHeader, BadContentDispositionParam):
        # aiohttp raises these for a broken multipart body (no boundary, a part without a name or with
        # malformed headers, nested multipart, bad base64) and for an unknown charset; the
        # Content-Disposition ones are warnings, raised only where warnings are errors.
        raise UnreadableBody(400, "the request body is not a readable form (URL-encoded or multipart)") from None
    fields = Form()
    for name, value in form.items():
        if isinstance(value, str):
            fields[name] = value
        elif isinstance(value, web.FileField):
            with value.file:  # an upload aiohttp spooled to a temporary file: read it if wanted, release it now
                if name in uploads and name not in fields.files:
                    fields.files[name] = Upload(value.filename, value.file.read())
    return fields
