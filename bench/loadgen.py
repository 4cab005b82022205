"""Drive an HTTP server for a bounded time: wrk when installed, else a small asyncio client."""

import asyncio
import json
import random
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ITEM_COUNT = 10_000
POST_BODY = json.dumps(
    {"name": "bench item", "description": "written by the benchmark", "price": "9.99"}
)

_WRK_SCRIPT = """
math.randomseed(os.time())
local method = "{method}"
local count = {count}
wrk.headers["Content-Type"] = "application/json"
request = function()
  if method == "POST" then
    return wrk.format("POST", "/items", nil, '{body}')
  end
  return wrk.format("GET", "/items/" .. math.random(1, count))
end
"""


@dataclass
class LoadResult:
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    requests: int
    non_2xx: int
    socket_errors: int
    tool: str


def run_load(port: int, method: str, connections: int, seconds: float) -> LoadResult:
    """Load GET /items/{random id} or POST /items with `connections` keep-alive connections."""
    if shutil.which("wrk"):
        return _run_wrk(port, method, connections, seconds)
    return asyncio.run(_run_python(port, method, connections, seconds))


def _run_wrk(port: int, method: str, connections: int, seconds: float) -> LoadResult:
    script = _WRK_SCRIPT.format(method=method, count=ITEM_COUNT, body=POST_BODY)
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write(script)
    threads = min(2, connections)
    command = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--latency",
        "--timeout",
        "10s",
        "-s",
        handle.name,
        f"http://127.0.0.1:{port}",
    ]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    Path(handle.name).unlink()
    return LoadResult(
        requests_per_second=float(re.search(r"Requests/sec:\s+([\d.]+)", output)[1]),  # type: ignore[index]
        p50_ms=_wrk_latency(output, "50%"),
        p99_ms=_wrk_latency(output, "99%"),
        max_ms=_wrk_max(output),
        requests=int(re.search(r"(\d+) requests in", output)[1]),  # type: ignore[index]
        non_2xx=int(m[1]) if (m := re.search(r"Non-2xx or 3xx responses: (\d+)", output)) else 0,
        socket_errors=sum(
            int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", output)
        ),
        tool="wrk",
    )


def _to_ms(value: str, unit: str) -> float:
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}[unit]


def _wrk_latency(output: str, percentile: str) -> float:
    match = re.search(
        rf"^\s+{re.escape(percentile)}\s+([\d.]+)(us|ms|s|m)\s*$", output, re.MULTILINE
    )
    return _to_ms(match[1], match[2]) if match else float("nan")


def _wrk_max(output: str) -> float:
    match = re.search(r"Latency\s+\S+\s+\S+\s+([\d.]+)(us|ms|s|m)", output)
    return _to_ms(match[1], match[2]) if match else float("nan")


async def _run_python(port: int, method: str, connections: int, seconds: float) -> LoadResult:
    deadline = time.perf_counter() + seconds
    latencies: list[float] = []
    statuses: list[int] = []
    errors = 0

    async def worker() -> None:
        nonlocal errors
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            errors += 1
            return
        try:
            while time.perf_counter() < deadline:
                if method == "POST":
                    body = POST_BODY.encode()
                    head = (
                        f"POST /items HTTP/1.1\r\nHost: b\r\nContent-Type: application/json\r\n"
                        f"Content-Length: {len(body)}\r\n\r\n"
                    ).encode()
                    request = head + body
                else:
                    request = f"GET /items/{random.randint(1, ITEM_COUNT)} HTTP/1.1\r\nHost: b\r\n\r\n".encode()
                started = time.perf_counter()
                writer.write(request)
                headers = await reader.readuntil(b"\r\n\r\n")
                length = int(re.search(rb"(?i)content-length: (\d+)", headers)[1])  # type: ignore[index]
                await reader.readexactly(length)
                latencies.append(time.perf_counter() - started)
                statuses.append(int(headers.split(b" ", 2)[1]))
        except (OSError, asyncio.IncompleteReadError):
            errors += 1
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(connections)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    quantiles = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0.0] * 99
    return LoadResult(
        requests_per_second=len(latencies) / elapsed,
        p50_ms=quantiles[49] * 1000,
        p99_ms=quantiles[98] * 1000,
        max_ms=(latencies[-1] if latencies else 0.0) * 1000,
        requests=len(latencies),
        non_2xx=sum(1 for status in statuses if not 200 <= status < 300),
        socket_errors=errors,
        tool="python",
    )
