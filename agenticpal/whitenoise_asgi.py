"""WhiteNoise under an ASGI server: static files stream through an async iterator.

WhiteNoise's middleware answers with a ``FileResponse`` over a plain file, a synchronous
iterator. Django's ASGI handler can only consume one by collecting it in a thread, and
warns on every static file ("StreamingHttpResponse must consume synchronous iterators in
order to serve them asynchronously"). Under ASGI this middleware gives the same response
an async iterator instead: the file is read in chunks in a worker thread. Under WSGI
(the test client) the response is WhiteNoise's own.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import IO

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIRequest
from whitenoise.middleware import WhiteNoiseMiddleware as _WhiteNoiseMiddleware

CHUNK = 64 * 1024


async def _read(file: IO[bytes] | None) -> AsyncIterator[bytes]:
    if file is None:  # HEAD, 304: headers only
        return
    read = sync_to_async(file.read, thread_sensitive=False)
    while chunk := await read(CHUNK):
        yield chunk


class WhiteNoiseMiddleware(_WhiteNoiseMiddleware):
    @staticmethod
    def serve(static_file, request):
        response = _WhiteNoiseMiddleware.serve(static_file, request)
        if isinstance(request, ASGIRequest):
            # The file stays registered for closing (FileResponse's resource closers).
            response.streaming_content = _read(response.file_to_stream)
        return response
