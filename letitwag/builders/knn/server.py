"""The HTTP face of the kNN service: a Starlette ASGI app run by uvicorn.

Why Starlette + uvicorn: an ASGI event loop keeps thousands of connections open cheaply while
faiss and torch work on background threads (see ``batching``); ``--workers N`` starts N uvicorn
processes that share the memory-mapped index through the page cache. Every refusal is a 4xx
JSON ``{"error": ...}`` with a one-line reason: malformed JSON and unknown fields (400), an
unknown index (404), a body over the size limit (413), never a 500 for bad input.
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from letitwag.builders.knn.protocol import (
    INDICES_PATH,
    KNN_PATH,
    METADATA_PATH,
    RECALL_HEADER,
    UNSUPPORTED_HEADER,
    parse_request,
)
from letitwag.builders.knn.service import KnnQueryError, KnnService, ServiceLimits
from letitwag.errors import UserInputError

logger = logging.getLogger(__name__)

SETTINGS_ENV = "LETITWAG_KNN_SERVE_SETTINGS"


@dataclass
class ServeSettings:
    """Everything a worker process needs to rebuild the service (passed as JSON in multi-worker mode)."""

    indices: dict[str, str]  # name -> index directory
    model_override: str | None = None
    load_model: bool = True
    device: str = "cpu"
    torch_threads: int = 1
    search_threads: int = 1
    max_body_bytes: int = 32 * 1024 * 1024
    inline_images: bool = False
    limits: dict = field(default_factory=dict)


def index_names(paths: list[str]) -> dict[str, str]:
    """``NAME=DIR`` or ``DIR`` (named after the folder) -> ``{name: dir}``; duplicate names refused."""
    named: dict[str, str] = {}
    for text in paths:
        name, sep, directory = text.partition("=")
        if not sep:
            name, directory = Path(text).resolve().name, text
        if name in named:
            raise UserInputError(f"two indices are named {name!r}; name them NAME=DIR")
        named[name] = directory
    return named


def build_service(settings: ServeSettings) -> KnnService:
    """Open the indices (memory-mapped) and load each distinct model once.

    numpy's BLAS is held to one thread: its pool would otherwise spin on every core for the small
    per-request products (de-duplication's 40 x 40 similarities) while faiss searches, which
    more than doubled the server's CPU per request at 512 dimensions.
    """
    from threadpoolctl import threadpool_limits

    from letitwag.builders.knn.store import open_index

    threadpool_limits(limits=1, user_api="blas")
    indices = {name: open_index(directory, name, int8_scan=True) for name, directory in settings.indices.items()}
    encoders = {}
    if settings.load_model:
        import torch

        from letitwag.models import load_encoder

        torch.set_num_threads(settings.torch_threads)
        for index in indices.values():
            if settings.model_override:
                index.config["model"] = settings.model_override
            spec = index.config.get("model")
            if spec and spec not in encoders:
                logger.info("loading model %s for text/image queries", spec)
                encoders[spec] = load_encoder(spec, device=settings.device)
    limits = ServiceLimits(**settings.limits, search_threads=settings.search_threads)
    return KnnService(indices, encoders, limits, inline_images=settings.inline_images)


class _TooLarge(Exception):
    pass


async def _read_body(request, limit: int) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _TooLarge()
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _TooLarge()
        chunks.append(chunk)
    return b"".join(chunks)


def recall_header(details: list[dict]) -> str:
    """``name=recall@k`` per index, e.g. ``laion=0.934@40,local=exact``."""
    parts = []
    for item in details:
        recall = item["recall"]
        value = "exact" if recall.get("exact") else f"{recall.get('recall_at_k')}@{recall.get('k')}"
        parts.append(f"{item['name']}={value}")
    return ",".join(parts)


def create_app(service: KnnService, max_body_bytes: int = 32 * 1024 * 1024):
    """The ASGI app: clip-retrieval's endpoints plus ``GET /health`` (indices, unsupported flags, worker pid)."""
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    try:
        import orjson
    except ImportError:  # an optional speed-up; the json module gives the same bytes' meaning
        orjson = None

    class FastJSONResponse(JSONResponse):
        """orjson encodes a 40-result answer several times faster than the json module."""

        def render(self, content) -> bytes:
            return orjson.dumps(content) if orjson is not None else super().render(content)

    def error(status: int, message: str) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status)

    async def knn(request):
        try:
            body = await _read_body(request, max_body_bytes)
            try:
                query = parse_request(body)
            except ValueError as problem:
                return error(400, str(problem))
            results = await service.query(query)
        except _TooLarge:
            return error(413, f"request body above the limit of {max_body_bytes} bytes")
        except KnnQueryError as problem:
            return error(problem.status, str(problem))
        headers = {}
        unsupported = query.unsupported_flags()
        if unsupported:
            headers[UNSUPPORTED_HEADER] = ",".join(unsupported)
        return FastJSONResponse(results, headers=headers)

    async def metadata(request):
        try:
            body = json.loads(await _read_body(request, max_body_bytes))
            ids = body["ids"]
            if not isinstance(ids, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
                raise ValueError("ids must be a list of integers")
            unknown = set(body) - {"ids", "indice_name"}
            if unknown:
                raise ValueError(f"unknown field(s) {sorted(unknown)}; allowed: ids, indice_name")
            return JSONResponse(service.metadata(ids, body.get("indice_name")))
        except _TooLarge:
            return error(413, f"request body above the limit of {max_body_bytes} bytes")
        except KnnQueryError as problem:
            return error(problem.status, str(problem))
        except (ValueError, KeyError, TypeError) as problem:
            return error(400, f"bad /metadata request ({type(problem).__name__}: {problem}); send {{ids: [...]}}")

    async def indices(request):
        """clip-retrieval's answer (a list of names) unless ``?details=true`` asks for our richer one.

        The measured recall also travels in a header, so clients that only know the list see it.
        """
        if request.query_params.get("details", "").lower() in ("1", "true", "yes"):
            return JSONResponse(service.index_details())
        return JSONResponse(service.index_names(), headers={RECALL_HEADER: recall_header(service.index_details())})

    async def health(request):
        return JSONResponse(service.info() | {"worker_pid": os.getpid()})

    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield
        await service.close()

    return Starlette(
        routes=[
            Route(KNN_PATH, knn, methods=["POST"]),
            Route(METADATA_PATH, metadata, methods=["POST"]),
            Route(INDICES_PATH, indices, methods=["GET"]),
            Route("/health", health, methods=["GET"]),
        ],
        lifespan=lifespan,
    )


def serving_app(settings: ServeSettings):
    """The app of one serving process, its start-up objects exempt from garbage collection.

    Why ``gc.freeze()``: torch, faiss and the models leave ~455,000 long-lived objects, and a
    full collection walks them all: 270-290 ms (``benchmarks/bench_knn.py``) during which the process (event loop and search
    thread) holds still. Under load such stalls (100-350 ms in ``benchmarks/bench_knn.py``'s
    per-request timings) set the p99 latency. Frozen, they are never walked;
    objects made while serving are collected as before.
    """
    app = create_app(build_service(settings), settings.max_body_bytes)
    gc.collect()
    gc.freeze()
    return app


def app_from_environment():
    """uvicorn factory for worker processes: settings come from ``$LETITWAG_KNN_SERVE_SETTINGS``."""
    return serving_app(ServeSettings(**json.loads(os.environ[SETTINGS_ENV])))


def serve(settings: ServeSettings, host: str = "127.0.0.1", port: int = 1234, workers: int = 1,
          log_level: str = "warning") -> None:
    """Run the server until interrupted; indices are checked here first so errors are one line."""
    import uvicorn

    from letitwag.builders.knn.store import read_config

    for directory in settings.indices.values():
        read_config(directory)
    options = dict(host=host, port=port, log_level=log_level, access_log=False, backlog=4096,
                   timeout_keep_alive=30)
    logger.info("serving %s on http://%s:%d with %d worker(s)", ", ".join(settings.indices), host, port, workers)
    if workers == 1:
        uvicorn.run(serving_app(settings), **options)
        return
    os.environ[SETTINGS_ENV] = json.dumps(asdict(settings))
    uvicorn.run("letitwag.builders.knn.server:app_from_environment", factory=True, workers=workers, **options)
