"""HTTP service: requests per second and p95 latency with 8 concurrent clients on loopback, for /decode
with the phrase and generative decoders (the latter when a model is shipped), bounded in time.

    python bench/service.py [--seconds 20] [--clients 8]

Starts `lightweight-decoder serve` on a free 127.0.0.1 port, sends single-vector /decode requests of
held-out dev sentences' embeddings, stops by itself. Writes bench/results/service.json.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import threading
import time

import numpy as np

from _common import REPO, command, dev_sentences, machine, write_result


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _load(base: str, decoder: str, vectors: list, clients: int, seconds: float) -> dict:
    import httpx

    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def client(offset: int) -> None:
        with httpx.Client(base_url=base, timeout=60) as http:
            i = offset
            while time.monotonic() < stop:
                body = {"vectors": [vectors[i % len(vectors)]], "decoder": decoder}
                start = time.perf_counter()
                r = http.post("/decode", json=body)
                elapsed = (time.perf_counter() - start) * 1000.0
                with lock:
                    if r.status_code == 200:
                        latencies.append(elapsed)
                    else:
                        errors[0] += 1
                i += clients

    start = time.monotonic()
    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - start
    return {"decoder": decoder, "clients": clients, "seconds": round(wall, 1), "requests": len(latencies), "errors": errors[0],
            "requests_per_s": round(len(latencies) / wall, 2),
            "p50_ms": round(float(np.percentile(latencies, 50)), 2) if latencies else None,
            "p95_ms": round(float(np.percentile(latencies, 95)), 2) if latencies else None}


def _decode_counters(base: str, decoder: str) -> tuple[int, int] | None:
    """(/decode requests, decoder calls that served them) from /metrics, or None if the server has no such counters."""
    import httpx

    values = {}
    for line in httpx.get(f"{base}/metrics").text.splitlines():
        for name in ("ld_decode_requests_total", "ld_decoder_calls_total"):
            if line.startswith(f'{name}{{decoder="{decoder}"}} '):
                values[name] = int(line.split()[-1])
    return (values["ld_decode_requests_total"], values["ld_decoder_calls_total"]) if len(values) == 2 else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20.0, help="load duration per decoder")
    parser.add_argument("--clients", type=int, default=8)
    args = parser.parse_args()

    import httpx

    from lightweight_decoder.encoder import TextEncoder

    vectors = TextEncoder().encode(dev_sentences(n=256), precision="auto").tolist()
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "lightweight_decoder", "serve", "--port", str(port)], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit("the server did not start")
            time.sleep(0.5)
        decoders = httpx.get(f"{base}/info").json()["decoders"]
        rows = []
        for name in ("phrase", "generative"):
            if name in decoders:
                before = _decode_counters(base, name)
                rows.append(_load(base, name, vectors, args.clients, args.seconds))
                after = _decode_counters(base, name)
                if before and after and after[1] > before[1]:  # servers before micro-batching have no counters
                    rows[-1]["requests_per_decoder_call"] = round((after[0] - before[0]) / (after[1] - before[1]), 2)
        for row in rows:
            print(row, flush=True)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    path = write_result("service", {"command": command(), "machine": machine(), "results": rows,
                                    "note": "single-vector /decode requests; loopback; the server and the clients share the 2 cores"})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
