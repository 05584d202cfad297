"""The gateway hook: an HTTP service the clearinghouse gateway calls for every 837 file.

``POST /v1/preprocess?mode=annotate|rewrite[&ack=999]`` with the raw X12 body:

======================================  =========================================================
accepted (possibly rewritten)          200, body = output X12 (rewrite) or the original (annotate);
                                       ``X-EDI837-Verdict`` and ``X-EDI837-Findings`` headers;
                                       ``Accept: application/json`` returns the JSON report
``?ack=999``                           the 999 (or TA1) for the input (pyx12 check: slow)
``?hold=true`` (rewrite)               claims left for a person are held back (``edi.split``):
                                       ``Accept: multipart/mixed`` gets ``forward.x12``,
                                       ``held.x12`` and ``report.json`` parts; otherwise the
                                       forward file with ``X-EDI837-Held`` (the count), and the
                                       JSON report (``Accept: application/json``) lists the held
                                       findings by claim
not processable X12                    422 ``application/problem+json`` with codes and positions
body over ``max_bytes``                413 (counted while streaming: chunked bodies too)
wrong media type                       415 (``application/EDI-X12``, ``application/octet-stream``,
                                       ``text/plain`` are accepted)
missing / bad token                    401 with ``WWW-Authenticate: Bearer``; known partner not
                                       allowed: 403
same ``Idempotency-Key`` and payload   the same result (recomputed; only hashes are kept, in a
                                       store every worker process shares)
same key, other payload / still running 422 / 409
history store down, past the time      503 with ``Retry-After``
limit, more than ``max_pending`` files
``mode``, ``ack``, ``Authorization``,  400 (never resolved silently: a proxy and edi837 could
``Content-Type`` or ``Idempotency-Key`` pick different ones)
given twice
body not received within the timeout   408
======================================  =========================================================

``GET /healthz`` (no auth: liveness probes), ``GET /metrics`` (Prometheus text) and
``GET /openapi.json`` (both need a bearer token: a partner's, or ``EDI837_METRICS_TOKEN`` for
a scraper that must not be able to send claims).

Bodies stream into a spooled temporary file while they are hashed and counted, never held whole
in memory; the CPU work runs in a thread pool (``workers`` threads) so health checks stay fast,
under a per-request time limit that stops the work (see ``DeadlinePassed``). Tokens are compared
as SHA-256 digests of the header's bytes (UTF-8 for a non-ASCII token) with
``hmac.compare_digest`` against every configured token. No PHI goes into URLs, headers or logs;
uvicorn's access log is off, its other messages and asyncio's are written without tracebacks,
and edi837 logs method, route, status, sizes and durations.

Several worker processes agree: ``Idempotency-Key`` entries live in one database every worker
opens (``edi.adapters.idempotency``) and the metrics are the Prometheus client's multi-process
files, summed over the workers when scraped.

Connections (``GuardedH11Protocol``): a keep-alive timeout between requests, a header timeout
from the first byte (or the connection) to the end of the request headers, a body timeout in
the app, and a cap on open connections per process below the file-descriptor limit (one over the
cap gets a 503 and is closed), so idle sockets can neither starve ``/healthz`` nor run the
process out of descriptors.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import hmac
import io
import json
import logging
import os
import resource
import shutil
import socket
import tempfile
import threading
import time
from dataclasses import dataclass
from typing import Any

import anyio
import h11
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from uvicorn.protocols.http.h11_impl import H11Protocol

from edi.adapters import jobs, logs
from edi.adapters.ack_process import ACK_PROCESSES, acknowledge_in_child
from edi.adapters.idempotency import IdempotencyKeys, key_digest
from edi.adapters.logs import get_logger
from edi.errors import EdiError, TemporaryFailure
from edi.pipeline import Refused, Retry
from edi.report.model import FileReport

ACCEPTED_TYPES = ("application/edi-x12", "application/octet-stream", "text/plain")
SPOOL_IN_MEMORY = 1 << 20


@dataclass(frozen=True, slots=True)
class Partner:
    name: str
    token_sha256: bytes
    allowed: bool = True


def token_digest(token: str) -> bytes:
    """SHA-256 of a configured token's bytes (what the environment held, UTF-8 as a rule)."""
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()


def load_partners(path: str | None, single_token: str | None) -> list[Partner]:
    """Partners from a JSON file ``{"name": {"token_sha256": "<hex>", "allowed": true}}``,
    plus ``EDI837_API_TOKEN`` as the partner ``default``. A token is its UTF-8 bytes."""
    partners: list[Partner] = []
    if single_token:
        partners.append(Partner("default", token_digest(single_token)))
    if path:
        with open(path, encoding="utf-8") as handle:
            document = json.load(handle)
        for name, entry in document.items():
            partners.append(Partner(name, bytes.fromhex(entry["token_sha256"]), bool(entry.get("allowed", True))))
    return partners


class Metrics:
    """Prometheus metrics. Under ``serve`` the client runs in multi-process mode
    (``PROMETHEUS_MULTIPROC_DIR``, a fresh private folder per start): each worker writes its
    values to its own file and a scrape sums them, whichever worker answers it."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Summary
        from prometheus_client.multiprocess import MultiProcessCollector

        self.registry = CollectorRegistry()
        shared = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
        if shared:
            MultiProcessCollector(self.registry)
        # In multi-process mode the values go to the files, and the collector reads them all.
        target = None if shared else self.registry
        self.requests = Counter("edi837_requests", "Requests by route and status.", ["route", "status"],
                                registry=target)
        self.findings = Counter("edi837_findings", "Findings reported.", registry=target)
        self.bytes_in = Counter("edi837_request_bytes", "Request body bytes read.", registry=target)
        self.processing = Summary("edi837_processing_seconds", "Time spent processing files.", registry=target)
        self.inflight = Gauge("edi837_inflight", "Requests being processed.", multiprocess_mode="livesum",
                              registry=target)

    def count(self, route: str, status: int) -> None:
        self.requests.labels(route=route, status=str(status)).inc()

    def render(self) -> bytes:
        from prometheus_client import generate_latest

        return generate_latest(self.registry)


class BodyTooLarge(Exception):
    pass


class DeadlinePassed(Exception):
    """The request's ``--time-limit`` passed: its work stops and the client gets 503."""




@dataclass(slots=True)
class Settings:
    max_bytes: int = 50 * 1024 * 1024
    workers: int = 2  # CPU threads per process
    time_limit: float = 120.0
    retry_after: int = 30
    body_timeout: float = 120.0  # the whole body, from the end of the headers
    max_pending: int = 64  # /v1/preprocess requests at once per process (receiving, queued, running)
    state: str = ""  # the Idempotency-Key store: SQLite path or postgresql:// URL ("" = this process only)
    ack_sender: str = ""  # "QQ:ID": the 999/TA1 sender ("" = the input's receiver answers)


BUSY_RETRY_AFTER = "1"  # overload passes in moments: the client may come back soon
REPEATABLE_NOT = ("authorization", "content-type", "idempotency-key")  # headers that must come once


class Gateway:
    def __init__(self, options_factory: Any, partners: list[Partner], settings: Settings) -> None:
        self._options_factory = options_factory  # opens rules and history per request set-up
        self.partners = partners
        self.settings = settings
        self.metrics = Metrics()
        state = settings.state or os.path.join(tempfile.mkdtemp(prefix="edi837-state-"), "state.sqlite")
        self.keys = IdempotencyKeys(state, running_for_at_most=settings.time_limit + 60)
        self.limiter = anyio.CapacityLimiter(settings.workers)
        self.pending = 0  # touched on the event loop only
        self.metrics_token = token_digest(os.environ["EDI837_METRICS_TOKEN"]) \
            if os.environ.get("EDI837_METRICS_TOKEN") else None
        self.log = get_logger("edi837.gateway")

    # -- auth ------------------------------------------------------------------------------
    def _authenticate(self, request: Request, *, metrics_token: bytes | None = None) -> Partner | Response:
        # The header's own bytes: Starlette decodes headers as latin-1, so encoding back gives
        # exactly what the client sent (UTF-8 for a non-ASCII token).
        header = request.headers.get("authorization", "").encode("latin-1")
        scheme, _, token = header.partition(b" ")
        if scheme.lower() != b"bearer" or not token.strip():
            return self._problem(401, "authentication required", headers={"WWW-Authenticate": 'Bearer realm="edi837"'})
        presented = hashlib.sha256(token.strip()).digest()
        match = None
        for partner in self.partners:  # every entry compared: the time does not tell which matched
            if hmac.compare_digest(presented, partner.token_sha256):
                match = partner
        if metrics_token is not None and hmac.compare_digest(presented, metrics_token):
            match = Partner("metrics", metrics_token)
        if match is None:
            return self._problem(401, "invalid token",
                                 headers={"WWW-Authenticate": 'Bearer realm="edi837", error="invalid_token"'})
        if not match.allowed:
            return self._problem(403, "this partner may not use the service")
        return match

    def _repeated(self, request: Request, *, parameters: tuple[str, ...] = ()) -> Response | None:
        """400 for a parameter or header that came more than once: which one counts would be
        a guess (the first? the last?), and a proxy and edi837 could guess differently."""
        for name in parameters:
            if len(request.query_params.getlist(name)) > 1:
                return self._problem(400, f"the query parameter {name} is given more than once")
        for name in REPEATABLE_NOT:
            if len(request.headers.getlist(name)) > 1:
                return self._problem(400, f"the header {name} is given more than once")
        return None

    @staticmethod
    def _problem(status: int, title: str, *, errors: list[dict[str, Any]] | None = None,
                 headers: dict[str, str] | None = None) -> Response:
        body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status}
        if errors is not None:
            body["errors"] = errors
        return Response(json.dumps(body), status_code=status, media_type="application/problem+json", headers=headers)

    # -- the endpoint ----------------------------------------------------------------------
    async def preprocess(self, request: Request) -> Response:
        started = time.perf_counter()
        try:
            if self.pending >= self.settings.max_pending:
                response = self._problem(503, "too many requests at once", headers={"Retry-After": BUSY_RETRY_AFTER})
            else:
                self.pending += 1
                try:
                    response = await self._preprocess(request)
                finally:
                    self.pending -= 1
        except Exception as error:  # noqa: BLE001 - the last line: a 500 with no data in it
            self.log.error("http.failed", error_type=type(error).__name__)
            response = self._problem(500, "internal error")
        self.metrics.count("/v1/preprocess", response.status_code)
        self.log.info("http.request", method="POST", route="/v1/preprocess", http_status=response.status_code,
                      duration_ms=round((time.perf_counter() - started) * 1000, 1))
        return response

    async def _preprocess(self, request: Request) -> Response:
        refused = self._repeated(request, parameters=("mode", "ack", "hold"))
        if refused is not None:
            return refused
        partner = self._authenticate(request)
        if isinstance(partner, Response):
            return partner
        media = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media not in ACCEPTED_TYPES:
            return self._problem(415, "unsupported media type: send application/EDI-X12")
        mode = request.query_params.get("mode", "rewrite")
        ack = request.query_params.get("ack")
        if mode not in ("annotate", "rewrite") or ack not in (None, "999"):
            return self._problem(422, "mode must be annotate or rewrite; ack may be 999")
        hold = request.query_params.get("hold", "false")
        if hold not in ("true", "false") or (hold == "true" and (mode != "rewrite" or ack)):
            return self._problem(422, "hold may be true or false, and true only with mode=rewrite and no ack")
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > self.settings.max_bytes:
            return self._problem(413, f"body over {self.settings.max_bytes} bytes", headers={"Connection": "close"})
        spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)  # noqa: SIM115 - closed below
        try:
            digest = None
            with anyio.move_on_after(self.settings.body_timeout):
                try:
                    digest = await self._receive(request, spool)
                except BodyTooLarge:
                    return self._problem(413, f"body over {self.settings.max_bytes} bytes",
                                         headers={"Connection": "close"})
            if digest is None:
                return self._problem(408, f"the body did not arrive within {self.settings.body_timeout:g} s",
                                     headers={"Connection": "close"})
            key = request.headers.get("idempotency-key")
            if key:
                key = key_digest(partner.name, key)
                try:
                    verdict = await anyio.to_thread.run_sync(self.keys.begin, key, digest)
                except Exception as error:  # noqa: BLE001 - the store's driver errors quote SQL, not data
                    self.log.error("http.idempotency_store_failed", error_type=type(error).__name__)
                    return self._retry_later(TemporaryFailure("the Idempotency-Key store is unavailable",
                                                              code="IDEMPOTENCY_STORE"))
                if verdict == "conflict":
                    return self._problem(422, "Idempotency-Key already used with another payload")
                if verdict == "running":
                    return self._problem(409, "a request with this Idempotency-Key is still running",
                                         headers={"Retry-After": "1"})
            keep = False
            # The limit counts from the complete body (a slow upload is the body timeout's
            # business) and covers the wait for a thread. The work checks the deadline itself
            # between chunks (or is killed, for the 999), so the thread is free again when the
            # 503 goes out; ``fail_after`` only cuts the wait for a thread short.
            deadline = time.monotonic() + self.settings.time_limit
            try:
                self.metrics.inflight.inc()
                with anyio.fail_after(self.settings.time_limit):
                    response = await anyio.to_thread.run_sync(
                        self._work, spool, mode, ack, request.headers.get("accept", ""), deadline,
                        hold == "true", limiter=self.limiter)
                keep = response.status_code < 500
                return response
            except TimeoutError:
                return self._too_slow()
            finally:
                self.metrics.inflight.dec()
                if key:
                    with anyio.CancelScope(shield=True):
                        await self._end_key(key, digest, keep=keep)
        finally:
            spool.close()

    async def _end_key(self, key: str, digest: str, *, keep: bool) -> None:
        try:
            await anyio.to_thread.run_sync(functools.partial(self.keys.end, key, digest, keep=keep))
        except Exception as error:  # noqa: BLE001 - a key left "running" expires after the time limit
            self.log.error("http.idempotency_store_failed", error_type=type(error).__name__)

    async def _receive(self, request: Request, spool: Any) -> str:
        digest = hashlib.sha256()
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > self.settings.max_bytes:
                raise BodyTooLarge
            digest.update(chunk)
            spool.write(chunk)
        self.metrics.bytes_in.inc(size)
        return digest.hexdigest()

    def _retry_later(self, error: TemporaryFailure) -> Response:
        """503 with Retry-After: the code in the title, the message (it may name a server path) not."""
        return self._problem(error.http_status, f"temporarily unavailable ({error.code})",
                             headers={"Retry-After": str(self.settings.retry_after)})

    def _too_slow(self) -> Response:
        return self._problem(503, "processing took too long", headers={"Retry-After": str(self.settings.retry_after)})

    def _work(self, spool: Any, mode: str, ack: str | None, accept: str, deadline: float,
              hold: bool = False) -> Response:
        """In a worker thread: check, then rewrite or pass through; the response."""
        started = time.perf_counter()
        lock = threading.Lock()

        def chunks() -> Any:
            # Both passes read the body through here, 64 KB at a time (a few milliseconds of
            # work each): the deadline is checked between chunks and stops either pass.
            with lock:
                spool.seek(0)
                while chunk := spool.read(1 << 16):
                    if time.monotonic() > deadline:
                        raise DeadlinePassed
                    yield chunk

        options = None
        try:
            options = self._options_factory()
            if ack:
                report, _ = jobs.check(chunks, options, name="request")
                return self._acknowledge(spool, report, options, deadline)
            out = io.BytesIO()
            held = io.BytesIO() if hold else None
            outcome = jobs.process(chunks, options, mode=mode, output=out, name="request", hold=held)
            if isinstance(outcome, Retry):
                return self._retry_later(outcome.error)
            if isinstance(outcome, Refused):
                return self._problem(outcome.http_status, "not a processable X12 interchange",
                                     errors=[e.as_record() for e in outcome.report.errors])
            report, body = outcome.report, out.getvalue()
        except DeadlinePassed:
            return self._too_slow()
        except TemporaryFailure as error:  # opening the history store, or checking for a 999
            return self._retry_later(error)
        except EdiError as error:
            # The hint says whose fault it is: 500 the server's history store or key, 422 the file.
            if error.code.startswith("HISTORY_"):
                return self._problem(error.http_status, f"history store unusable ({error.code})")
            return self._problem(error.http_status, error.code)
        finally:
            if options is not None and options.history is not None:
                options.history.close()
            if options is not None and options.tables is not None:
                options.tables.close()
            self.metrics.processing.observe(time.perf_counter() - started)
        self.metrics.findings.inc(len(report.findings))
        headers = {"X-EDI837-Verdict": report.status, "X-EDI837-Findings": str(len(report.findings)),
                   "X-EDI837-File-Id": report.sha256[:20]}
        if held is not None:
            headers["X-EDI837-Held"] = str(report.held_claims or 0)
            if "multipart/mixed" in accept:
                return _multipart(body, held.getvalue(), report, headers)
        if "application/json" in accept:
            return Response(report.to_json(), media_type="application/json", headers=headers)
        return Response(body, media_type="application/EDI-X12", headers=headers)

    def _acknowledge(self, spool: Any, report: FileReport, options: jobs.JobOptions, deadline: float) -> Response:
        with tempfile.NamedTemporaryFile(prefix="edi837-ack-", suffix=".x12") as copy, \
                tempfile.TemporaryDirectory(prefix="edi837-ack-") as folder:
            spool.seek(0)
            while chunk := spool.read(1 << 16):
                copy.write(chunk)
            copy.flush()
            target = os.path.join(folder, "ack.x12")
            checked = self._check_in_child(copy.name, report, options, target, deadline, self.settings.ack_sender)
            if not os.path.exists(target):
                return self._problem(422, "no acknowledgment can be addressed",
                                     errors=[e.as_record() for e in checked.errors])
            with open(target, "rb") as handle:
                body = handle.read()
        status = 422 if checked.errors else 200
        return Response(body, status_code=status, media_type="application/EDI-X12",
                        headers={"X-EDI837-Verdict": checked.status, "X-EDI837-Findings": str(len(checked.findings))})

    @staticmethod
    def _check_in_child(copy_path: str, report: FileReport, options: jobs.JobOptions, target: str,
                        deadline: float, ack_sender: str) -> FileReport:
        """``check_file`` in a child process, killed when the deadline passes."""
        receiver, sender = ACK_PROCESSES.Pipe(duplex=False)
        child = ACK_PROCESSES.Process(target=acknowledge_in_child, daemon=True,
                                      args=(sender, copy_path, report, options.limits, target, ack_sender))
        try:
            child.start()
            sender.close()
            if not receiver.poll(max(0.0, deadline - time.monotonic())):
                raise DeadlinePassed
            outcome, value = receiver.recv()  # EOFError when the child died: a 500
        finally:
            if child.pid is not None:  # started
                if child.is_alive():
                    child.kill()
                child.join()
            sender.close()
            receiver.close()
        if outcome != "done":
            raise RuntimeError(f"the acknowledgment failed in its process ({value})")
        return value

    # -- the rest --------------------------------------------------------------------------
    async def healthz(self, request: Request) -> Response:
        self.metrics.count("/healthz", 200)
        return JSONResponse({"status": "ok"})

    async def metrics_endpoint(self, request: Request) -> Response:
        refused = self._repeated(request) or self._refused_reader(request)
        if refused is not None:
            self.metrics.count("/metrics", refused.status_code)
            return refused
        self.metrics.count("/metrics", 200)
        body = await anyio.to_thread.run_sync(self.metrics.render)  # reads every worker's file
        return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")

    async def openapi(self, request: Request) -> Response:
        refused = self._repeated(request) or self._refused_reader(request)
        return refused if refused is not None else JSONResponse(OPENAPI)

    def _refused_reader(self, request: Request) -> Response | None:
        """Metrics and the API description tell an outsider what runs here and how busy it is:
        they need a partner's token or the metrics token."""
        found = self._authenticate(request, metrics_token=self.metrics_token)
        return found if isinstance(found, Response) else None


OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "edi837 gateway hook", "version": "1"},
    "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    "paths": {
        "/v1/preprocess": {"post": {
            "summary": "Check an 837P interchange and annotate or rewrite it",
            "security": [{"bearer": []}],
            "parameters": [
                {"name": "mode", "in": "query", "schema": {"type": "string", "enum": ["annotate", "rewrite"], "default": "rewrite"}},
                {"name": "ack", "in": "query", "schema": {"type": "string", "enum": ["999"]}},
                {"name": "hold", "in": "query", "schema": {"type": "string", "enum": ["true", "false"], "default": "false"}},
                {"name": "Idempotency-Key", "in": "header", "schema": {"type": "string"}},
            ],
            "requestBody": {"required": True, "content": {
                "application/EDI-X12": {"schema": {"type": "string", "format": "binary"}},
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
                "text/plain": {"schema": {"type": "string"}}}},
            "responses": {
                "200": {"description": "the output X12 (or the JSON report with Accept: application/json)",
                        "headers": {"X-EDI837-Verdict": {"schema": {"type": "string"}},
                                    "X-EDI837-Findings": {"schema": {"type": "integer"}}}},
                "400": {"description": "mode, ack, Authorization, Content-Type or Idempotency-Key given twice"},
                "401": {"description": "missing or bad token"}, "403": {"description": "partner not allowed"},
                "408": {"description": "the body did not arrive within the body timeout"},
                "409": {"description": "same Idempotency-Key still running"},
                "413": {"description": "body too large"}, "415": {"description": "wrong media type"},
                "422": {"description": "not a processable interchange (problem+json), or key reused with another payload"},
                "503": {"description": "dependency down, over the time limit or overloaded; see Retry-After"},
            },
        }},
        "/healthz": {"get": {"summary": "liveness", "responses": {"200": {"description": "ok"}}}},
        "/metrics": {"get": {"summary": "Prometheus metrics, summed over the worker processes",
                             "security": [{"bearer": []}],
                             "responses": {"200": {"description": "text format"}, "401": {"description": "no token"}}}},
        "/openapi.json": {"get": {"summary": "this document", "security": [{"bearer": []}],
                                  "responses": {"200": {"description": "OpenAPI 3.1"}}}},
    },
}


def _multipart(forward: bytes, held: bytes, report: FileReport, headers: dict[str, str]) -> Response:
    """``?hold=true`` for a client that accepts ``multipart/mixed`` (RFC 2046): the forward file,
    the held file (each only when it holds a claim) and the JSON report, named by their
    Content-Disposition (``forward.x12``, ``held.x12``, ``report.json``)."""
    import secrets

    boundary = f"edi837-{secrets.token_hex(16)}"
    parts = [(name, media, content) for name, media, content in (
        ("forward.x12", "application/EDI-X12", forward), ("held.x12", "application/EDI-X12", held),
        ("report.json", "application/json", report.to_json().encode())) if content]
    body = b"".join(
        f'--{boundary}\r\nContent-Type: {media}\r\nContent-Disposition: attachment; filename="{name}"\r\n\r\n'.encode()
        + content + b"\r\n" for name, media, content in parts) + f"--{boundary}--\r\n".encode()
    return Response(body, media_type=f"multipart/mixed; boundary={boundary}", headers=headers)


def create_app(gateway: Gateway | None = None) -> Starlette:
    if gateway is None:
        gateway = gateway_from_environment()
    return Starlette(routes=[
        Route("/v1/preprocess", gateway.preprocess, methods=["POST"]),
        Route("/healthz", gateway.healthz, methods=["GET"]),
        Route("/metrics", gateway.metrics_endpoint, methods=["GET"]),
        Route("/openapi.json", gateway.openapi, methods=["GET"]),
    ], lifespan=_lifespan)


@contextlib.asynccontextmanager
async def _lifespan(app: Starlette) -> Any:
    """asyncio reports what no task caught (a failed ``accept()`` when descriptors run out, a
    client that vanished mid-write) with a traceback per event; issue 13 saw 64 MB of them.
    One line with the error's type is enough to act on, and carries no data."""
    log = get_logger("edi837.gateway")
    last = {"at": 0.0, "suppressed": 0}

    def report(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        # At most one line a second: a failing accept() can repeat thousands of times a second.
        now = time.monotonic()
        if now - last["at"] < 1.0:
            last["suppressed"] += 1
            return
        error = context.get("exception")
        log.error("server.loop_error", error_type=type(error).__name__ if error is not None else None,
                  error_code=getattr(error, "errno", None), count=last["suppressed"] + 1)
        last["at"], last["suppressed"] = now, 0

    asyncio.get_running_loop().set_exception_handler(report)
    yield


CONFIG_ENV = "EDI837_SERVE_CONFIG"


def gateway_from_environment() -> Gateway:
    """What ``edi837 serve`` passes to its uvicorn workers (one process each)."""
    from edi.adapters.history import open_history
    from edi.adapters.rules_files import load_rule_book
    from edi.pipeline import Limits

    config = json.loads(os.environ[CONFIG_ENV])
    logs.configure(config.get("log_level"))  # a spawned worker starts with no logging set up
    book = load_rule_book(config.get("rules_dir"))
    limits = Limits(**config.get("limits", {}))
    history_url = config.get("history")
    tables_url = config.get("tables")

    def options() -> jobs.JobOptions:
        from edi.adapters.tables import open_tables

        history = open_history(history_url) if history_url else None
        tables = open_tables(tables_url).lookup() if tables_url else None
        return jobs.JobOptions(book=book, limits=limits, select=tuple(config.get("select", ())),
                               ignore=tuple(config.get("ignore", ())), history=history, tables=tables)

    partners = load_partners(config.get("partners"), os.environ.get("EDI837_API_TOKEN"))
    settings = Settings(**config.get("settings", {}))
    return Gateway(options, partners, settings)


# -- connections -----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    keep_alive_timeout: float = 5.0  # idle between two requests on one connection
    header_timeout: float = 10.0  # from the connection (or a request's first byte) to its last header
    max_connections: int = 1000  # open connections per process; one more gets a 503 and is closed


@functools.cache
def _connection_limits() -> ConnectionLimits:
    # Read from the environment: uvicorn builds the protocol itself, in every worker process.
    config = json.loads(os.environ.get(CONFIG_ENV) or "{}")
    return ConnectionLimits(**config.get("connections", {}))


_BUSY_BODY = json.dumps({"type": "about:blank", "title": "too many connections", "status": 503}).encode()
BUSY_RESPONSE = (b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/problem+json\r\n"
                 b"retry-after: " + BUSY_RETRY_AFTER.encode() + b"\r\nconnection: close\r\n"
                 b"content-length: " + str(len(_BUSY_BODY)).encode() + b"\r\n\r\n" + _BUSY_BODY)


LINGER_SECONDS = 2.0  # how long the rest of a refused body is read and dropped before closing


class _LingeringTransport:
    """The transport as uvicorn's request cycle sees it. Closing a socket with unread data in
    it makes the kernel send a reset, and a client still uploading the body of a refused
    request (413 on the declared length, 408) then loses the answer too. So ``close()`` while
    the body is still coming half-closes instead (the answer goes out whole), reads and drops
    the rest for at most ``LINGER_SECONDS``, then closes: Apache's "lingering close"."""

    def __init__(self, transport: asyncio.Transport, protocol: GuardedH11Protocol) -> None:
        self._transport = transport
        self._protocol = protocol

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)

    def is_closing(self) -> bool:
        return self._protocol.lingering or self._transport.is_closing()

    def close(self) -> None:
        self._protocol.close_gently(self._transport)


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with the guards it lacks: a header timeout (uvicorn times a
    connection out only after a response, so a socket that never sends a request stayed open
    for ever), a cap on open connections (beyond it: 503 and close, before the process runs
    out of file descriptors and ``accept()`` starts failing) and a lingering close."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._limits = _connection_limits()
        self._header_timer: asyncio.TimerHandle | None = None
        self.lingering = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self._limits.max_connections:
            transport.write(BUSY_RESPONSE)
            transport.close()
            return
        self.transport = _LingeringTransport(transport, self)  # type: ignore[assignment]
        self._no_delay(transport)
        self._arm_header_timer()

    @staticmethod
    def _no_delay(transport: asyncio.Transport) -> None:
        """asyncio turns Nagle's algorithm off only on sockets whose ``proto`` is TCP; the
        listening socket uvicorn binds for ``--workers 2`` and more says 0, so there an answer
        written as headers then body waited for the client's delayed ACK: 48 ms a small request
        instead of 6 (measured)."""
        connection = transport.get_extra_info("socket")
        if connection is not None and connection.family in (socket.AF_INET, socket.AF_INET6):
            with contextlib.suppress(OSError):
                connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def close_gently(self, transport: asyncio.Transport) -> None:
        if self.lingering or transport.is_closing() or self.conn.their_state is not h11.SEND_BODY \
                or not transport.can_write_eof():
            transport.close()
            return
        self.lingering = True
        self._disarm_header_timer()
        transport.write_eof()
        transport.resume_reading()  # flow control may have paused it while the app did not read
        self.loop.call_later(LINGER_SECONDS, transport.close)

    def data_received(self, data: bytes) -> None:
        if self.lingering:
            return  # the rest of a body nobody will read
        super().data_received(data)
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self._arm_header_timer()  # a request has begun and its headers are not complete
        else:
            self._disarm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_timer()
        super().connection_lost(exc)

    def _arm_header_timer(self) -> None:
        if self._header_timer is None:
            self._header_timer = self.loop.call_later(self._limits.header_timeout, self._header_timeout_passed)

    def _disarm_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _header_timeout_passed(self) -> None:
        self._header_timer = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.transport.close()


class _TracebackFreeFormatter(logging.Formatter):
    """uvicorn's and asyncio's own messages, one line each: no traceback (frames and messages
    of exceptions can quote request data)."""

    def format(self, record: logging.LogRecord) -> str:
        record.exc_info = record.exc_text = record.stack_info = None
        return super().format(record)


UVICORN_LOGGING = {
    "version": 1, "disable_existing_loggers": False,
    "formatters": {"line": {"()": _TracebackFreeFormatter, "format": "%(levelname)s %(name)s: %(message)s"}},
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "line", "stream": "ext://sys.stderr"}},
    "loggers": {
        "uvicorn": {"handlers": ["stderr"], "level": "WARNING", "propagate": False},
        "uvicorn.access": {"handlers": [], "level": "CRITICAL", "propagate": False},  # no access log: URLs, clients
        "asyncio": {"handlers": ["stderr"], "level": "WARNING", "propagate": False},
    },
}
DESCRIPTOR_RESERVE = 64  # files, databases, pipes and the listening socket besides connections
MAX_BACKLOG = 2048  # uvicorn's default listen backlog (also asyncio's accept batch)


def raise_descriptor_limit() -> int:
    """The soft limit on open files raised to the hard one; the limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def serve(config: dict[str, Any], *, host: str, port: int, workers: int) -> int:
    """Run the gateway under uvicorn: the start-up line, the shared state and metrics folders,
    the connection guards; returns when the server stops."""
    import uvicorn

    settings = Settings(**config["settings"])
    connections = ConnectionLimits(**config["connections"])
    # Keep ``accept()`` from ever failing for want of descriptors: each connection holds one,
    # each pending request may hold another (its spooled body), and asyncio accepts up to
    # ``backlog`` sockets in one go (then up to three such batches are open before the ones
    # over the cap are closed). So the cap and the batch share what the limit leaves.
    spare = raise_descriptor_limit() - DESCRIPTOR_RESERVE - 2 * settings.max_pending
    connections = ConnectionLimits(connections.keep_alive_timeout, connections.header_timeout,
                                   max(1, min(connections.max_connections, spare // 2)))
    backlog = min(MAX_BACKLOG, max(16, (spare - connections.max_connections) // 3))
    runtime = tempfile.mkdtemp(prefix="edi837-serve-")  # 0700: the workers' shared metrics and keys
    metrics_folder = os.path.join(runtime, "metrics")
    os.mkdir(metrics_folder)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_folder  # before any worker imports the client
    if not settings.state:
        settings.state = os.path.join(runtime, "state.sqlite")
    IdempotencyKeys(settings.state, running_for_at_most=settings.time_limit)  # a bad store fails now
    config = {**config, "settings": {**config["settings"], "state": settings.state},
              "connections": {"keep_alive_timeout": connections.keep_alive_timeout,
                              "header_timeout": connections.header_timeout,
                              "max_connections": connections.max_connections}}
    os.environ[CONFIG_ENV] = json.dumps(config)
    get_logger("edi837.gateway").warning(  # warning: written at the default level too
        "serve.start", host=host, port=port, workers=workers, threads=settings.workers,
        time_limit_s=settings.time_limit, max_bytes=settings.max_bytes, max_pending=settings.max_pending,
        max_connections=connections.max_connections, keep_alive_timeout_s=connections.keep_alive_timeout,
        header_timeout_s=connections.header_timeout, body_timeout_s=settings.body_timeout,
        history="postgresql" if str(config.get("history") or "").startswith("postgres") else
        ("sqlite" if config.get("history") else None),
        state="postgresql" if settings.state.startswith("postgres") else "sqlite")
    try:
        uvicorn.run("edi.adapters.gateway:create_app", factory=True, host=host, port=port, workers=workers,
                    http="edi.adapters.gateway:GuardedH11Protocol", timeout_keep_alive=connections.keep_alive_timeout,  # type: ignore[arg-type]  # annotated int; an asyncio timer, fractions work
                    backlog=backlog, access_log=False, log_config=UVICORN_LOGGING, server_header=False)
    finally:
        shutil.rmtree(runtime, ignore_errors=True)
    return 0
