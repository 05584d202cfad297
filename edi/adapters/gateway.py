"""The gateway hook: an HTTP service the clearinghouse gateway calls for every 837 file.

``POST /v1/preprocess?mode=annotate|rewrite[&ack=999]`` with the raw X12 body:

=====================================  ==========================================================
accepted (possibly rewritten)          200, body = output X12 (rewrite) or the original (annotate);
                                       ``X-EDI837-Verdict`` and ``X-EDI837-Findings`` headers;
                                       ``Accept: application/json`` returns the JSON report
``?ack=999``                           the 999 (or TA1) for the input (pyx12 check: slow)
not processable X12                    422 ``application/problem+json`` with codes and positions
body over ``max_bytes``                413 (counted while streaming: chunked bodies too)
wrong media type                       415 (``application/EDI-X12``, ``application/octet-stream``,
                                       ``text/plain`` are accepted)
missing / bad token                    401 with ``WWW-Authenticate: Bearer``; known partner not
                                       allowed: 403
same ``Idempotency-Key`` and payload   the same result (recomputed; only hashes are kept)
same key, other payload / still running 422 / 409
history store down, overloaded, slow   503 with ``Retry-After``
=====================================  ==========================================================

``GET /healthz`` (no auth), ``GET /metrics`` (Prometheus text), ``GET /openapi.json``.

Bodies stream into a spooled temporary file while they are hashed and counted, never held whole
in memory; the CPU work runs in a thread pool (``workers`` threads) so health checks stay fast,
under a per-request time limit. Tokens are compared as SHA-256 digests with
``hmac.compare_digest`` against every configured token. No PHI goes into URLs, headers or logs;
uvicorn's access log is off and edi837 logs method, route, status, sizes and durations.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import io
import json
import multiprocessing
import os
import tempfile
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from edi.adapters import jobs
from edi.adapters.logs import get_logger
from edi.errors import EdiError, TemporaryFailure
from edi.report.model import FileReport

ACCEPTED_TYPES = ("application/edi-x12", "application/octet-stream", "text/plain")
SPOOL_IN_MEMORY = 1 << 20


@dataclass(frozen=True, slots=True)
class Partner:
    name: str
    token_sha256: bytes
    allowed: bool = True


def load_partners(path: str | None, single_token: str | None) -> list[Partner]:
    """Partners from a JSON file ``{"name": {"token_sha256": "<hex>", "allowed": true}}``,
    plus ``EDI837_API_TOKEN`` as the partner ``default``."""
    partners: list[Partner] = []
    if single_token:
        partners.append(Partner("default", hashlib.sha256(single_token.encode()).digest()))
    if path:
        with open(path, encoding="utf-8") as handle:
            document = json.load(handle)
        for name, entry in document.items():
            partners.append(Partner(name, bytes.fromhex(entry["token_sha256"]), bool(entry.get("allowed", True))))
    return partners


@dataclass(slots=True)
class Metrics:
    requests: dict[tuple[str, int], int] = field(default_factory=dict)
    findings: int = 0
    bytes_in: int = 0
    seconds: float = 0.0
    processed: int = 0
    inflight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, route: str, status: int) -> None:
        with self.lock:
            self.requests[(route, status)] = self.requests.get((route, status), 0) + 1

    def render(self) -> str:
        lines = ["# HELP edi837_requests_total Requests by route and status.", "# TYPE edi837_requests_total counter"]
        for (route, status), value in sorted(self.requests.items()):
            lines.append(f'edi837_requests_total{{route="{route}",status="{status}"}} {value}')
        lines += [
            "# HELP edi837_findings_total Findings reported.", "# TYPE edi837_findings_total counter",
            f"edi837_findings_total {self.findings}",
            "# HELP edi837_request_bytes_total Request body bytes read.", "# TYPE edi837_request_bytes_total counter",
            f"edi837_request_bytes_total {self.bytes_in}",
            "# HELP edi837_processing_seconds Time spent processing files.", "# TYPE edi837_processing_seconds summary",
            f"edi837_processing_seconds_sum {self.seconds:.6f}", f"edi837_processing_seconds_count {self.processed}",
            "# HELP edi837_inflight Requests being processed.", "# TYPE edi837_inflight gauge",
            f"edi837_inflight {self.inflight}",
        ]
        return "\n".join(lines) + "\n"


class IdempotencyKeys:
    """Key -> (payload hash, state). Bodies are never kept; results are recomputed."""

    def __init__(self, capacity: int = 10_000, ttl: float = 24 * 3600) -> None:
        self._entries: OrderedDict[str, tuple[str, str, float]] = OrderedDict()
        self._capacity = capacity
        self._ttl = ttl
        self._lock = threading.Lock()

    def begin(self, key: str, payload: str) -> str | None:
        """None to go ahead; "conflict" (other payload) or "running" otherwise."""
        now = time.monotonic()
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and now - entry[2] < self._ttl:
                if entry[0] != payload:
                    return "conflict"
                if entry[1] == "running":
                    return "running"
            self._entries[key] = (payload, "running", now)
            self._entries.move_to_end(key)
            while len(self._entries) > self._capacity:
                self._entries.popitem(last=False)
        return None

    def end(self, key: str, payload: str, *, keep: bool) -> None:
        with self._lock:
            if keep:
                self._entries[key] = (payload, "done", time.monotonic())
            else:
                self._entries.pop(key, None)


class BodyTooLarge(Exception):
    pass


class DeadlinePassed(Exception):
    """The request's ``--time-limit`` passed: its work stops and the client gets 503."""


# The 999 runs pyx12 (seconds per thousand claims, pure Python, no place to check a deadline),
# so it runs in a child process that is killed at the deadline: a thread cannot be stopped from
# outside. The fork server starts once with pyx12 loaded; each acknowledgment is a cheap fork of
# it, never of this multi-threaded server.
_ACK_PROCESSES = multiprocessing.get_context("forkserver")
_ACK_PROCESSES.set_forkserver_preload(["edi.adapters.ig_check"])


def _acknowledge_in_child(results: Any, copy_path: str, report: FileReport, limits: Any, target: str) -> None:
    """In the child: the implementation-guide check and the 999 (or TA1) written to ``target``."""
    try:
        from edi.adapters.ig_check import check_file

        results.send(("done", check_file(copy_path, report, limits=limits, ack_path=target, ack_control=None)))
    except BaseException as error:  # noqa: BLE001 - to the parent by type only: messages may quote data
        results.send(("failed", type(error).__name__))


@dataclass(slots=True)
class Settings:
    max_bytes: int = 50 * 1024 * 1024
    workers: int = 2  # CPU threads per process
    time_limit: float = 120.0
    retry_after: int = 30


class Gateway:
    def __init__(self, options_factory: Any, partners: list[Partner], settings: Settings) -> None:
        self._options_factory = options_factory  # opens rules and history per request set-up
        self.partners = partners
        self.settings = settings
        self.metrics = Metrics()
        self.keys = IdempotencyKeys()
        self.limiter = anyio.CapacityLimiter(settings.workers)
        self.log = get_logger("edi837.gateway")

    # -- auth ------------------------------------------------------------------------------
    def _authenticate(self, request: Request) -> Partner | Response:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            return self._problem(401, "authentication required", headers={"WWW-Authenticate": 'Bearer realm="edi837"'})
        presented = hashlib.sha256(token.strip().encode()).digest()
        match = None
        for partner in self.partners:  # every entry compared: the time does not tell which matched
            if hmac.compare_digest(presented, partner.token_sha256):
                match = partner
        if match is None:
            return self._problem(401, "invalid token",
                                 headers={"WWW-Authenticate": 'Bearer realm="edi837", error="invalid_token"'})
        if not match.allowed:
            return self._problem(403, "this partner may not use the service")
        return match

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
            response = await self._preprocess(request)
        except Exception as error:  # noqa: BLE001 - the last line: a 500 with no data in it
            self.log.error("http.failed", error_type=type(error).__name__)
            response = self._problem(500, "internal error")
        self.metrics.count("/v1/preprocess", response.status_code)
        self.log.info("http.request", method="POST", route="/v1/preprocess", http_status=response.status_code,
                      duration_ms=round((time.perf_counter() - started) * 1000, 1))
        return response

    async def _preprocess(self, request: Request) -> Response:
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
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > self.settings.max_bytes:
            return self._problem(413, f"body over {self.settings.max_bytes} bytes")
        spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)  # noqa: SIM115 - closed below
        try:
            try:
                digest = await self._receive(request, spool)
            except BodyTooLarge:
                return self._problem(413, f"body over {self.settings.max_bytes} bytes")
            key = request.headers.get("idempotency-key")
            if key:
                verdict = self.keys.begin(f"{partner.name}\x00{key}", digest)
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
                self.metrics.inflight += 1
                with anyio.fail_after(self.settings.time_limit):
                    response = await anyio.to_thread.run_sync(
                        self._work, spool, mode, ack, request.headers.get("accept", ""), deadline,
                        limiter=self.limiter)
                keep = response.status_code < 500
                return response
            except TimeoutError:
                return self._too_slow()
            finally:
                self.metrics.inflight -= 1
                if key:
                    self.keys.end(f"{partner.name}\x00{key}", digest, keep=keep)
        finally:
            spool.close()

    async def _receive(self, request: Request, spool: Any) -> str:
        digest = hashlib.sha256()
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > self.settings.max_bytes:
                raise BodyTooLarge
            digest.update(chunk)
            spool.write(chunk)
        self.metrics.bytes_in += size
        return digest.hexdigest()

    def _too_slow(self) -> Response:
        return self._problem(503, "processing took too long", headers={"Retry-After": str(self.settings.retry_after)})

    def _work(self, spool: Any, mode: str, ack: str | None, accept: str, deadline: float) -> Response:
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
            report, engine = jobs.check(chunks, options, name="request")
            if ack:
                return self._acknowledge(spool, report, options, deadline)
            if report.errors or report.unreadable:
                return self._problem(422, "not a processable X12 interchange",
                                     errors=[e.as_record() for e in report.errors])
            out = io.BytesIO()
            report = jobs.pass_on(mode, chunks, out, report, engine, options)
            body = out.getvalue()
        except DeadlinePassed:
            return self._too_slow()
        except TemporaryFailure as error:
            return self._problem(503, f"temporarily unavailable ({error.code})",
                                 headers={"Retry-After": str(self.settings.retry_after)})
        except EdiError as error:
            return self._problem(422, error.code)
        finally:
            if options is not None and options.history is not None:
                options.history.close()
            with self.metrics.lock:
                self.metrics.seconds += time.perf_counter() - started
                self.metrics.processed += 1
        with self.metrics.lock:
            self.metrics.findings += len(report.findings)
        headers = {"X-EDI837-Verdict": report.status, "X-EDI837-Findings": str(len(report.findings)),
                   "X-EDI837-File-Id": report.sha256[:20]}
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
            checked = self._check_in_child(copy.name, report, options, target, deadline)
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
                        deadline: float) -> FileReport:
        """``check_file`` in a child process, killed when the deadline passes."""
        receiver, sender = _ACK_PROCESSES.Pipe(duplex=False)
        child = _ACK_PROCESSES.Process(target=_acknowledge_in_child, daemon=True,
                                       args=(sender, copy_path, report, options.limits, target))
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
        self.metrics.count("/metrics", 200)
        return PlainTextResponse(self.metrics.render(), media_type="text/plain; version=0.0.4")

    async def openapi(self, request: Request) -> Response:
        return JSONResponse(OPENAPI)


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
                "401": {"description": "missing or bad token"}, "403": {"description": "partner not allowed"},
                "409": {"description": "same Idempotency-Key still running"},
                "413": {"description": "body too large"}, "415": {"description": "wrong media type"},
                "422": {"description": "not a processable interchange (problem+json), or key reused with another payload"},
                "503": {"description": "dependency down or overloaded; see Retry-After"},
            },
        }},
        "/healthz": {"get": {"summary": "liveness", "responses": {"200": {"description": "ok"}}}},
        "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {"200": {"description": "text format"}}}},
    },
}


def create_app(gateway: Gateway | None = None) -> Starlette:
    if gateway is None:
        gateway = gateway_from_environment()
    return Starlette(routes=[
        Route("/v1/preprocess", gateway.preprocess, methods=["POST"]),
        Route("/healthz", gateway.healthz, methods=["GET"]),
        Route("/metrics", gateway.metrics_endpoint, methods=["GET"]),
        Route("/openapi.json", gateway.openapi, methods=["GET"]),
    ])


CONFIG_ENV = "EDI837_SERVE_CONFIG"


def gateway_from_environment() -> Gateway:
    """What ``edi837 serve`` passes to its uvicorn workers (one process each)."""
    from edi.adapters.history import open_history
    from edi.adapters.rules_files import load_rule_book
    from edi.pipeline import Limits

    config = json.loads(os.environ[CONFIG_ENV])
    book = load_rule_book(config.get("rules_dir"))
    limits = Limits(**config.get("limits", {}))
    history_url = config.get("history")

    def options() -> jobs.JobOptions:
        history = open_history(history_url) if history_url else None
        return jobs.JobOptions(book=book, limits=limits, select=tuple(config.get("select", ())),
                               ignore=tuple(config.get("ignore", ())), history=history)

    partners = load_partners(config.get("partners"), os.environ.get("EDI837_API_TOKEN"))
    settings = Settings(**config.get("settings", {}))
    return Gateway(options, partners, settings)


with contextlib.suppress(Exception):  # keep uvicorn's own loggers from writing access lines
    import logging

    logging.getLogger("uvicorn.access").disabled = True
