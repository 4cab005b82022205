"""Attribute a service's CPU time to its layers, from py-spy samples.

py-spy records every stack it samples with Python and native frames (`--native`
shows where asyncpg's Cython, pydantic-core's Rust and greenlet's C++ run; without
it their time would land on the Python frame that called them). Each sample goes to
the layer of the innermost frame that belongs to one; frames of general-purpose
code (contextlib, typing, the interpreter, libc) pass the sample on to their caller.
"""

import re
import subprocess
from collections import Counter
from pathlib import Path
from typing import Final

# py-spy stops the process for each sample while it unwinds native frames: sampled
# faster, the service slows down enough to be profiled under another load than measured.
SAMPLES_PER_SECOND: Final = 50

KERNEL = "kernel (system calls)"
LAYERS = (
    KERNEL,
    "server",
    "routing and dependencies",
    "middlewares",
    "logging",
    "validation and serialisation",
    "SQLAlchemy",
    "greenlet",
    "driver",
    "service code",
    "garbage collector",
    "other",
)
LAYER_DESCRIPTIONS = {
    KERNEL: "system time from /proc; samples: inside send, recv and the like",
    "server": "uvicorn, httptools, asyncio's loop and transports",
    "routing and dependencies": "fastapi and starlette outside middleware and serialisation",
    "middlewares": "the service's access log and admission, starlette.middleware",
    "logging": "the logging module and the service's log formatter",
    "validation and serialisation": "pydantic, fastapi.encoders, response serialising, json",
    "SQLAlchemy": "sqlalchemy but its greenlet bridge",
    "greenlet": "greenlet and SQLAlchemy's bridge onto it",
    "driver": "asyncpg",
    "service code": "the service's own modules",
    "garbage collector": "collections, whichever allocation set them off",
    "other": "any other library, or no layer in the stack",
}
# Top-level packages of site-packages that are one layer as a whole.
_PACKAGES = {
    "uvicorn": "server",
    "httptools": "server",
    "pydantic": "validation and serialisation",
    "pydantic_core": "validation and serialisation",
    "greenlet": "greenlet",
    "asyncpg": "driver",
}
_STDLIB_LAYERS = {
    "asyncio": "server",
    "selectors": "server",
    "socket": "server",
    "json": "validation and serialisation",
    "logging": "logging",
}
# Native frames carry the C source file they were compiled from, not the library's path.
_NATIVE = (
    (re.compile(r"greenlet"), "greenlet"),
    (re.compile(r"asyncpg/"), "driver"),
    (re.compile(r"pydantic"), "validation and serialisation"),
    (re.compile(r"httptools|llhttp|_asynciomodule|socketmodule|selectmodule"), "server"),
    (re.compile(r"_json"), "validation and serialisation"),
    (re.compile(r"sqlalchemy"), "SQLAlchemy"),
)
# libc's wrappers of the system calls a server makes per request.
_SYSCALLS = frozenset(
    ("send", "recv", "sendto", "recvfrom", "sendmsg", "recvmsg", "write", "writev", "read")
    + ("epoll_wait", "epoll_ctl", "accept4", "close", "getsockopt", "setsockopt")
)
# CPython's collector, run inside whatever allocation crossed a threshold.
_GC = re.compile(r"^(gc_collect|collect_generations|_PyGC_Collect|gc_collect_main)")
_FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^()]*?)(?::\d+)?\)$")
_STDLIB = re.compile(r"/lib/python3\.\d+/(?P<module>[A-Za-z_]\w*)")
_SERIALISING = {"serialize_response", "_prepare_response_content", "render"}


def layer_of(function: str, file: str, package: str) -> str | None:
    """The layer a frame belongs to, or None for code that passes the sample on."""
    if _GC.match(function):
        return "garbage collector"
    if f"/{package}/" in file:
        module = file.rsplit(f"/{package}/", 1)[1]
        if module.startswith(("access_log", "admission")) or "middleware" in module:
            return "middlewares"
        return "logging" if module.startswith("logs") else "service code"
    if "/site-packages/" in file:
        path = file.rsplit("/site-packages/", 1)[1]
        top = path.split("/", 1)[0]
        if top == "sqlalchemy":
            return "greenlet" if "_concurrency_py3k" in path else "SQLAlchemy"
        if top in ("fastapi", "starlette"):
            return _framework_layer(function, path)
        if top in _PACKAGES:
            return _PACKAGES[top]
        return None if top.endswith(".so") else "other"
    if file.endswith(".py") and (stdlib := _STDLIB.search(file)):
        return _STDLIB_LAYERS.get(stdlib["module"])
    for pattern, layer in _NATIVE:
        if pattern.search(file):
            return layer
    return None


def _framework_layer(function: str, path: str) -> str:
    if "/middleware/" in path:
        return "middlewares"
    if path.startswith("fastapi/encoders") or function.rsplit(".", 1)[-1] in _SERIALISING:
        return "validation and serialisation"
    return "routing and dependencies"


def attribute(raw: str, package: str) -> Counter[str]:
    """Count py-spy's raw (collapsed) stacks by layer."""
    samples: Counter[str] = Counter()
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        layer = "other"
        leaf = _FRAME.match(frames[-1])
        if leaf and leaf["function"].removeprefix("__libc_") in _SYSCALLS:
            samples[KERNEL] += int(count)
            continue
        for frame in reversed(frames):
            match = _FRAME.match(frame)
            if match and (found := layer_of(match["function"], match["file"], package)):
                layer = found
                break
        samples[layer] += int(count)
    return samples


def record(py_spy: Path, pid: int, seconds: float, output: Path) -> str:
    """Sample a running process with py-spy; return its collapsed stacks."""
    command = [
        str(py_spy),
        "record",
        "--pid",
        str(pid),
        "--duration",
        str(max(1, round(seconds))),
        "--rate",
        str(SAMPLES_PER_SECOND),
        "--native",
        "--full-filenames",
        "--format",
        "raw",
        "--output",
        str(output),
    ]
    subprocess.run(command, capture_output=True, text=True, check=True, timeout=seconds + 60)
    return output.read_text()
