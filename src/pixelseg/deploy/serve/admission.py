"""How ``pixelseg serve`` keeps within its limits (``ServeLimits``): a request takes its place
before its upload is read (``Admission``: at most ``max_active`` inside, ``max_waiting`` in
line, the rest 503), its upload is read against the byte limit and the upload deadline
(``UploadGate``: 413, 408), and the requests being processed share a memory budget
(``MemoryBudget``)."""

from __future__ import annotations

import asyncio
import contextlib
import time

from .limits import ServeLimits
from .schemas import ApiError, error_response
from .work import Deadline


class Admission:
    """At most ``max_active`` requests inside, ``max_waiting`` in line; the rest are refused."""

    def __init__(self, limits: ServeLimits) -> None:
        self.limits = limits
        self.inside = 0
        self.semaphore: asyncio.Semaphore | None = None

    async def __aenter__(self) -> None:
        if self.semaphore is None:  # created inside the server's event loop
            self.semaphore = asyncio.Semaphore(self.limits.max_active)
        if self.inside >= self.limits.max_active + self.limits.max_waiting:
            raise ApiError(503, "server busy: too many requests waiting; retry later")
        self.inside += 1
        try:
            await asyncio.wait_for(self.semaphore.acquire(), self.limits.wait_seconds)
        except asyncio.TimeoutError:
            self.inside -= 1
            raise ApiError(
                503, f"server busy: waited {self.limits.wait_seconds:.0f} s; retry later"
            ) from None
        except BaseException:  # the client went away while waiting: its place is free again
            self.inside -= 1
            raise

    async def __aexit__(self, *exc) -> None:
        self.semaphore.release()
        self.inside -= 1


class MemoryBudget:
    """The estimated bytes of the requests being processed stay under ``total``: a request
    that cannot fit alone is refused, the others wait for room."""

    def __init__(self, total: int) -> None:
        self.total, self.used = total, 0
        self.room: asyncio.Condition | None = None

    @contextlib.asynccontextmanager
    async def reserve(self, n: int, timeout: float):
        if self.room is None:  # created inside the server's event loop
            self.room = asyncio.Condition()
        async with self.room:
            await asyncio.wait_for(self.room.wait_for(lambda: self.used + n <= self.total), timeout)
            self.used += n
        try:
            yield
        finally:
            async with self.room:
                self.used -= n
                self.room.notify_all()


class UploadGate:
    """ASGI middleware in front of ``POST /predict``: a body declared over ``max_bytes`` is
    refused at once (413); then the request takes its place (``Admission``: 503 when the
    server is busy) *before* its body is read, and the body is read here, against the byte
    limit as it streams in (413, with or without a Content-Length) and the upload deadline
    (408), and handed on whole. The compute deadline starts when the body has arrived."""

    def __init__(self, app, limits: ServeLimits, admission: Admission) -> None:
        self.app, self.limits, self.admission = app, limits, admission
        # The multipart framing around the file takes a few hundred bytes more than the file.
        self.max_bytes = limits.max_bytes + 64 * 1024

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            return await self._refuse(scope, receive, send, 413, self._over())
        if scope["method"] != "POST" or scope["path"] != "/predict":
            return await self.app(scope, receive, send)
        try:
            async with self.admission:
                body = await self._read(receive)
                scope.setdefault("state", {})["deadline"] = Deadline(self.limits.compute_seconds)
                sent = False

                async def replay():
                    nonlocal sent
                    if sent:
                        return await receive()
                    sent = True
                    return {"type": "http.request", "body": body, "more_body": False}

                await self.app(scope, replay, send)
        except ApiError as e:
            await self._refuse(scope, receive, send, e.status, e.message)
        except _ClientGone:
            pass

    def _over(self) -> str:
        return f"upload over the limit of {self.limits.max_bytes:,} bytes (--max-bytes)"

    async def _read(self, receive) -> bytes:
        chunks, seen = [], 0
        end = time.monotonic() + self.limits.upload_seconds
        while True:
            try:
                message = await asyncio.wait_for(receive(), max(0.0, end - time.monotonic()))
            except asyncio.TimeoutError:
                raise ApiError(
                    408,
                    f"the upload did not arrive within {self.limits.upload_seconds:g} s "
                    "(--upload-seconds)",
                ) from None
            if message["type"] == "http.disconnect":
                raise _ClientGone
            chunk = message.get("body", b"")
            seen += len(chunk)
            if seen > self.max_bytes:
                raise ApiError(413, self._over())
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    @staticmethod
    async def _refuse(scope, receive, send, status: int, message: str) -> None:
        # The rest of the body is not read: the server closes the connection after this.
        await error_response(status, message)(scope, receive, send)


class _ClientGone(Exception):
    pass
