"""Load test of the Triton repository: bounded concurrent clients for a bounded time, loopback only.

Starts a real ``tritonserver`` (nvidia-pytriton) on 127.0.0.1 with the repository ``python -m export triton`` writes
for MODEL (python DCNN variant unless told otherwise), or uses a server already running on this machine (``--url``,
loopback addresses only). Each client thread sends frames to the ``deeplab`` ensemble (whole pipeline on the server)
until the time or the request budget runs out. Reports throughput, latency percentiles and errors, checks that the
server's ``nv_inference_request_success`` counter for ``deeplab`` grew by exactly the requests sent, and measures the
in-process runtime (runtime.Segmenter, one thread) on the same frames in the same run as the reference.

    python benchmarks/triton_load.py --model demo --clients 4 --duration 20 --json triton_load.json

Exit status 1 when a request failed or the server's count disagrees.
"""
from __future__ import annotations

import argparse
import ipaddress
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from export.triton import RepositoryOptions, write_repository
from export.triton_server import LocalTritonServer
from runtime import named
from runtime.backends.triton import TritonPipeline
from runtime.segmenter import Segmenter

REPO_ROOT = Path(__file__).resolve().parents[1]
REFERENCE_IMAGES = REPO_ROOT.parent / "shared" / "reference" / "images"


def load_frames(source: str | None, count: int, size: tuple[int, int] | None) -> list[np.ndarray]:
    """Frames of one size: an image or video file, else the demo video, else the reference photos, else noise."""
    import cv2

    frames: list[np.ndarray] = []
    candidates = [source] if source else []
    if not source:
        try:
            candidates.append(str(named.resolve("demo", "video")))
        except named.NamedFileError:
            pass
        candidates += [str(p) for p in sorted(REFERENCE_IMAGES.glob("*.jpg"))]
    for path in candidates:
        if not Path(path).is_file():
            continue
        cap = cv2.VideoCapture(path)
        while len(frames) < count:
            ok, frame = cap.read()
            if not ok:
                break
            frames.append(frame)
        cap.release()
        if len(frames) >= count:
            break
    if not frames:
        frames = [np.random.default_rng(i).integers(0, 256, (240, 320, 3), np.uint8) for i in range(count)]
    h, w = size or frames[0].shape[:2]
    return [cv2.resize(f, (w, h), interpolation=cv2.INTER_AREA) if f.shape[:2] != (h, w) else f for f in frames]


def success_count(metrics_text: str, model: str = "deeplab") -> int:
    """``nv_inference_request_success`` of ``model`` (all versions) in Prometheus text."""
    total = 0
    prefix = f'nv_inference_request_success{{model="{model}",'
    for line in metrics_text.splitlines():
        if line.startswith(prefix):
            total += int(float(line.rsplit(" ", 1)[1]))
    return total


def percentile_ms(latencies: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(latencies) * 1e3, q)) if latencies else float("nan")


def run_clients(url: str, protocol: str, frames: list[np.ndarray], clients: int, duration_s: float,
                max_requests: int, timeout_s: float) -> dict:
    """``clients`` threads, one connection each, until ``duration_s`` or ``max_requests`` in all."""
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors: list[str] = []
    budget = threading.Semaphore(max_requests)
    lock = threading.Lock()
    start = threading.Barrier(clients + 1)
    deadline = [0.0]

    def client(k: int) -> None:
        try:
            pipeline = TritonPipeline(url, protocol, timeout_s=timeout_s)
        except Exception as e:  # noqa: BLE001 - reported, counted
            with lock:
                errors.append(str(e))
            start.wait()
            return
        start.wait()
        i = k
        while time.monotonic() < deadline[0] and budget.acquire(blocking=False):
            t0 = time.perf_counter()
            try:
                pipeline.segment(frames[i % len(frames)])
                latencies[k].append(time.perf_counter() - t0)
            except Exception as e:  # noqa: BLE001 - reported, counted
                with lock:
                    errors.append(str(e))
            i += clients
        pipeline.close()

    threads = [threading.Thread(target=client, args=(k,), daemon=True) for k in range(clients)]
    for t in threads:
        t.start()
    deadline[0] = time.monotonic() + duration_s
    start.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join(duration_s + timeout_s + 30)
    elapsed = time.perf_counter() - t0
    flat = [x for per in latencies for x in per]
    return {"requests_ok": len(flat), "errors": len(errors), "first_error": errors[0] if errors else None,
            "seconds": elapsed, "throughput_fps": len(flat) / elapsed if elapsed else 0.0,
            "latency_ms": {"p50": percentile_ms(flat, 50), "p90": percentile_ms(flat, 90),
                           "p99": percentile_ms(flat, 99), "max": percentile_ms(flat, 100)}}


def in_process_reference(model: str, frames: list[np.ndarray], crf: bool, seconds: float) -> dict:
    """runtime.Segmenter in this process, one frame at a time, on the same frames."""
    seg = Segmenter(model, backend="onnxruntime", crf="default" if crf else None)
    seg.segment(frames[0])
    times = []
    t_end = time.monotonic() + seconds
    i = 0
    while time.monotonic() < t_end or not times:
        t0 = time.perf_counter()
        seg.segment(frames[i % len(frames)], return_probs=False)
        times.append(time.perf_counter() - t0)
        i += 1
    seg.close()
    return {"frames": len(times), "fps": len(times) / sum(times), "latency_ms_p50": percentile_ms(times, 50)}


def check_loopback(url: str) -> None:
    host = url.split("://", 1)[-1].rsplit(":", 1)[0].strip("[]")
    if host == "localhost":
        return
    try:
        if ipaddress.ip_address(host).is_loopback:
            return
    except ValueError:
        pass
    raise SystemExit(f"error: --url must be a loopback address (127.0.0.0/8, localhost, [::1]), got {host!r}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="demo", help="model for the repository and the reference (default demo)")
    p.add_argument("--url", help="a server already running on loopback (HOST:PORT; its metrics on --metrics-url)")
    p.add_argument("--metrics-url", help="with --url: http://127.0.0.1:8002/metrics")
    p.add_argument("--protocol", choices=("http", "grpc"), default="http", help="Triton protocol (default http)")
    p.add_argument("--dcnn-backend", default="python",
                   help="deeplab_dcnn variant of the generated repository (default python)")
    p.add_argument("--instances", type=int, default=1,
                   help="instances of each model in the generated repository (default 1)")
    p.add_argument("--clients", type=int, default=4, help="concurrent clients (default 4)")
    p.add_argument("--duration", type=float, default=20.0, help="seconds of load (default 20)")
    p.add_argument("--max-requests", type=int, default=5000, help="request budget over all clients (default 5000)")
    p.add_argument("--timeout", type=float, default=60.0, help="per-request timeout in seconds (default 60)")
    p.add_argument("--source", help="image or video for the frames (default: demo video, else reference photos)")
    p.add_argument("--frames", type=int, default=8, help="distinct frames cycled through (default 8)")
    p.add_argument("--size", help="resize frames to WxH (e.g. 320x240)")
    p.add_argument("--no-crf", action="store_true", help="no dense CRF on the server nor in the reference")
    p.add_argument("--reference-seconds", type=float, default=5.0,
                   help="seconds of in-process reference timing (default 5)")
    p.add_argument("--json", type=Path, help="write the results here")
    args = p.parse_args(argv)

    size = tuple(int(v) for v in args.size.lower().split("x"))[::-1] if args.size else None
    frames = load_frames(args.source, args.frames, size)  # type: ignore[arg-type]
    model = str(named.resolve(args.model, "model"))
    with tempfile.TemporaryDirectory(prefix="triton-load-") as tmp:
        server = None
        if args.url:
            check_loopback(args.url)
            if not args.metrics_url:
                raise SystemExit("error: --url needs --metrics-url (the count check reads the server's metrics)")
            check_loopback(args.metrics_url.split("://", 1)[-1].split("/", 1)[0])
            url, metrics = args.url, (lambda: _fetch(args.metrics_url))
        else:
            repo, _ = write_repository(model, Path(tmp) / "repo", RepositoryOptions(
                dcnn_backend=args.dcnn_backend, instances=args.instances, crf=not args.no_crf))
            server = LocalTritonServer(repo).start()
            url, metrics = server.url(args.protocol), server.metrics
        try:
            before = success_count(metrics())
            load = run_clients(url, args.protocol, frames, args.clients, args.duration, args.max_requests,
                               args.timeout)
            after = success_count(metrics())
        finally:
            if server is not None:
                server.stop()
    reference = in_process_reference(model, frames, not args.no_crf, args.reference_seconds)
    counted = after - before
    result = {"model": model, "protocol": args.protocol, "clients": args.clients, "duration_s": args.duration,
              "frame_size": list(frames[0].shape[:2]), "crf": not args.no_crf, "dcnn_backend": args.dcnn_backend,
              "instances": args.instances, **load, "server_request_success": counted,
              "requests_sent": load["requests_ok"] + load["errors"],
              "server_count_matches": counted == load["requests_ok"],
              "in_process": reference, "throughput_ratio_vs_in_process": load["throughput_fps"] / reference["fps"],
              "cpu_count": os.cpu_count()}
    lat = result["latency_ms"]
    rows = [("requests ok / errors", f"{load['requests_ok']} / {load['errors']}"),
            ("server nv_inference_request_success",
             f"{counted} ({'matches' if result['server_count_matches'] else 'MISMATCH'})"),
            ("throughput (frames/s)", f"{load['throughput_fps']:.2f}"),
            ("latency p50 / p90 / p99 (ms)", f"{lat['p50']:.1f} / {lat['p90']:.1f} / {lat['p99']:.1f}"),
            ("in-process Segmenter (frames/s)", f"{reference['fps']:.2f}"),
            ("Triton / in-process throughput", f"{result['throughput_ratio_vs_in_process']:.2f}x")]
    print(f"Triton load test: {args.clients} {args.protocol} clients, {load['seconds']:.1f} s, "
          f"{frames[0].shape[1]}x{frames[0].shape[0]} frames, CRF {'on' if not args.no_crf else 'off'}, "
          f"deeplab_dcnn {args.dcnn_backend}, {os.cpu_count()} CPU cores")
    width = max(len(r[0]) for r in rows)
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")
    if load["first_error"]:
        print(f"  first error: {load['first_error']}")
    if args.json:
        tmp_json = args.json.with_name(f".{args.json.name}.tmp")
        tmp_json.write_text(json.dumps(result, indent=2) + "\n")
        os.replace(tmp_json, args.json)
    return 0 if load["errors"] == 0 and result["server_count_matches"] else 1


def _fetch(url: str) -> str:
    import urllib.request

    with urllib.request.urlopen(url, timeout=10) as r:
        return r.read().decode()


if __name__ == "__main__":
    sys.exit(main())
