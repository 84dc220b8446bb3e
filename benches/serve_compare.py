"""§12 side by side: `ft serve` against the notebook's FastAPI + uvicorn + transformers pipeline,
serving the same fine-tuned text classifier on the same machine, in one run.

    python benches/serve_compare.py --model DIR --ft target/release/ft --data AG_NEWS.parquet

DIR is a fine-tuned sequence classifier in Hugging Face layout (BENCHMARKS.md uses the
all-MiniLM-L6-v2 AG News classifier that `ft train --config benches/runs/agnews_minilm.toml`
writes). Needs torch, transformers, fastapi, uvicorn[standard] and pyarrow (a throwaway venv;
never CI).

The FastAPI app is the notebook's (§12, Option B) verbatim: `pipeline("text-classification")`,
a sync `def predict` (run on uvicorn's thread pool), one worker, torch with 2 threads. The load
generator is asyncio on raw HTTP/1.1 keep-alive connections (light, the same for both servers):
N clients each send AG News texts back to back for a fixed time. Every answer is checked: ft's
against `ft predict` on the same texts (label equal, score within 1e-5), FastAPI's against the
transformers pipeline's label. Then the soak: 128 clients for 60 s on ft with 1 request in 4
malformed (30+ kinds), each must get its 4xx; ft's RSS before and after.
"""

import argparse
import asyncio
import json
import os
import platform
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time


def cpu_model():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_ready(port, proc, timeout=300):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                body = b'{"text": "warm up"}'
                s.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: "
                          + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body)
                if s.recv(64).startswith(b"HTTP/1.1 200"):
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise SystemExit("server not ready in time")


def rss_mib(pid):
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return float("nan")
    return float("nan")


# 30+ kinds of malformed requests: (raw body, content type, expected status class).
MALFORMED = [
    (b"{", "application/json"),
    (b"", "application/json"),
    (b"[1, 2]", "application/json"),
    (b"null", "application/json"),
    (b"\"text\"", "application/json"),
    (b"42", "application/json"),
    (b'{"text": 3}', "application/json"),
    (b'{"text": null}', "application/json"),
    (b'{"text": ""}', "application/json"),
    (b'{"text": "   "}', "application/json"),
    (b'{"text": ["a"]}', "application/json"),
    (b'{"text": {"a": 1}}', "application/json"),
    (b'{"text": true}', "application/json"),
    (b'{"txt": "a"}', "application/json"),
    (b"{}", "application/json"),
    (b'{"inputs": []}', "application/json"),
    (b'{"inputs": "a"}', "application/json"),
    (b'{"inputs": [1]}', "application/json"),
    (b'{"inputs": ["a", null]}', "application/json"),
    (b'{"inputs": ["a", ""]}', "application/json"),
    (b'{"text": "a", "inputs": ["b"]}', "application/json"),
    (b'{"text": "a", "top_k": 0}', "application/json"),
    (b'{"text": "a", "top_k": -1}', "application/json"),
    (b'{"text": "a", "top_k": "2"}', "application/json"),
    (b'{"text": "a", "top_k": 1.5}', "application/json"),
    (b'{"text": "a", "adapter": "nope"}', "application/json"),
    (b'{"text": "a", "adapter": 7}', "application/json"),
    (b'{"text": "a", "extra": 1}', "application/json"),
    (b'{"text": "a"', "application/json"),
    (b'{"text": "\\ud800"}', "application/json"),
    (b"\xff\xfe\x00garbage", "application/json"),
    (b'{"text": "a"}', "text/plain"),
    (b"--x\r\nContent-Disposition: form-data; name=\"text\"\r\n\r\n", "multipart/form-data; boundary=x"),
    (b'{"text": "' + b"a" * (3 * 1024 * 1024) + b'"}', "application/json"),
    (b"[" * 10000 + b"]" * 10000, "application/json"),
]


async def request(reader, writer, body, content_type="application/json"):
    head = (f"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    writer.write(head + body)
    await writer.drain()
    status_line = await reader.readline()
    if not status_line:
        raise ConnectionError("connection closed")
    status = int(status_line.split()[1])
    length, close = 0, False
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b""):
            break
        k, _, v = line.decode().partition(":")
        if k.lower() == "content-length":
            length = int(v.strip())
        if k.lower() == "connection" and v.strip().lower() == "close":
            close = True
    data = await reader.readexactly(length) if length else b""
    return status, data, close


async def client(port, texts, expected, stop_at, check, stats, malformed_every=0):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    i = random.randrange(len(texts))
    n = 0
    while time.perf_counter() < stop_at:
        n += 1
        bad = malformed_every and random.randrange(malformed_every) == 0
        if bad:
            body, ctype = random.choice(MALFORMED)
        else:
            k = i % len(texts)
            i += 1
            body, ctype = json.dumps({"text": texts[k]}).encode(), "application/json"
        t0 = time.perf_counter()
        try:
            status, data, close = await request(reader, writer, body, ctype)
        except (ConnectionError, asyncio.IncompleteReadError, OSError) as e:
            # A server may answer 413 and close before an over-limit body is sent whole: the
            # client then sees the connection reset while writing. Counted apart.
            if bad and len(body) > 2 * 1024 * 1024:
                stats["oversized_closed"] += 1
            else:
                stats["dropped"] += 1
            writer.close()
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            continue
        dt = time.perf_counter() - t0
        if bad:
            stats["malformed"] += 1
            if 400 <= status < 500:
                stats["malformed_4xx"] += 1
            else:
                stats["malformed_other"].append((status, body[:60]))
        else:
            stats["latencies"].append(dt)
            stats["status"][status] = stats["status"].get(status, 0) + 1
            if status == 200 and not check(json.loads(data), expected[k]):
                stats["wrong"] += 1
        if close:
            writer.close()
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.close()


def run_load(port, texts, expected, check, clients, seconds, malformed_every=0):
    stats = {"latencies": [], "status": {}, "wrong": 0, "dropped": 0, "oversized_closed": 0, "malformed": 0,
             "malformed_4xx": 0,
             "malformed_other": []}

    async def main():
        stop_at = time.perf_counter() + seconds
        await asyncio.gather(*(client(port, texts, expected, stop_at, check, stats, malformed_every)
                               for _ in range(clients)))

    t0 = time.perf_counter()
    asyncio.run(main())
    wall = time.perf_counter() - t0
    lat = sorted(stats["latencies"])
    q = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] * 1e3 if lat else float("nan")
    ok = stats["status"].get(200, 0)
    return {"clients": clients, "seconds": round(wall, 1), "requests": len(lat), "ok": ok,
            "rps": ok / wall, "p50_ms": q(0.50), "p99_ms": q(0.99),
            "5xx": sum(v for s, v in stats["status"].items() if s >= 500),
            "non_200": {s: v for s, v in stats["status"].items() if s != 200},
            "wrong": stats["wrong"], "dropped": stats["dropped"], "oversized_closed": stats["oversized_closed"],
            "malformed": stats["malformed"],
            "malformed_4xx": stats["malformed_4xx"], "malformed_other": stats["malformed_other"][:5]}


FASTAPI_APP = '''
import torch
torch.set_num_threads(2)
from transformers import pipeline
from fastapi import FastAPI
from pydantic import BaseModel

clf = pipeline("text-classification", model={model!r}, tokenizer={model!r}, device=-1)

app = FastAPI()

class Inp(BaseModel):
    text: str

@app.post("/predict")
def predict(inp: Inp):
    out = clf(inp.text)[0]
    return {{"label": out['label'], "score": float(out['score'])}}
'''


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--ft", required=True, help="a release build of ft")
    ap.add_argument("--data", required=True, help="AG News test.parquet")
    ap.add_argument("--texts", type=int, default=512)
    ap.add_argument("--clients", default="1,8,32,128")
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--soak-seconds", type=float, default=60)
    ap.add_argument("--ft-arg", action="append", default=[],
                    help="an extra argument for ft serve (repeat), e.g. --ft-arg=--workers --ft-arg=2")
    ap.add_argument("--skip-fastapi", action="store_true")
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    args = ap.parse_args()

    import pyarrow.parquet as pq
    texts = pq.read_table(args.data, columns=["text"]).column("text").to_pylist()[: args.texts]
    tmp = tempfile.mkdtemp(prefix="serve-compare-")

    # References: ft predict (for ft serve) and the transformers pipeline (for FastAPI).
    inp = os.path.join(tmp, "in.jsonl")
    with open(inp, "w") as f:
        for t in texts:
            f.write(json.dumps({"text": t}) + "\n")
    outp = os.path.join(tmp, "out.jsonl")
    subprocess.run([args.ft, "predict", "--model", args.model, "--input", inp, "--output", outp], check=True,
                   env={**os.environ, "HF_HUB_OFFLINE": "1"}, stderr=subprocess.DEVNULL)
    ft_ref = [json.loads(l) for l in open(outp)]

    results = {"cpu": cpu_model(), "cores": os.cpu_count(), "date": time.strftime("%Y-%m-%d %H:%M"),
               "model": args.model, "texts": len(texts), "ft": [], "fastapi": []}
    print(f"# {results['cpu']}, {results['cores']} cores", flush=True)

    # ft serve
    port = free_port()
    results["ft_args"] = args.ft_arg
    ft = subprocess.Popen([args.ft, "serve", "--model", args.model, "--port", str(port)] + args.ft_arg,
                          env={**os.environ, "HF_HUB_OFFLINE": "1", "RUST_LOG": "warn"},
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_ready(port, ft)
        check = lambda got, want: got["label"] == want["label"] and abs(got["score"] - want["score"]) <= 1e-5
        results["ft_rss_mib_start"] = rss_mib(ft.pid)
        for c in [int(x) for x in args.clients.split(",")]:
            r = run_load(port, texts, ft_ref, check, c, args.seconds)
            r["rss_mib"] = rss_mib(ft.pid)
            print("ft", json.dumps(r), flush=True)
            results["ft"].append(r)
        soak = run_load(port, texts, ft_ref, check, 128, args.soak_seconds, malformed_every=4)
        soak["rss_mib_after"] = rss_mib(ft.pid)
        print("ft soak", json.dumps(soak), flush=True)
        results["ft_soak"] = soak
        results["ft_alive_after_soak"] = ft.poll() is None
    finally:
        ft.send_signal(signal.SIGTERM)
        try:
            results["ft_exit"] = ft.wait(timeout=90)
        except subprocess.TimeoutExpired:
            ft.kill()
            results["ft_exit"] = "killed"

    if not args.skip_fastapi:
        from transformers import pipeline
        import torch
        torch.set_num_threads(2)
        clf = pipeline("text-classification", model=args.model, tokenizer=args.model, device=-1)
        py_ref = [{"label": o["label"], "score": o["score"]} for o in clf(texts, batch_size=32)]
        del clf
        agree = sum(a["label"] == b["label"] for a, b in zip(py_ref, ft_ref))
        results["labels_equal_ft_vs_transformers"] = f"{agree}/{len(texts)}"
        results["max_score_diff_ft_vs_transformers"] = max(abs(a["score"] - b["score"]) for a, b in zip(py_ref, ft_ref))
        app_dir = os.path.join(tmp, "app")
        os.makedirs(app_dir)
        with open(os.path.join(app_dir, "serve.py"), "w") as f:
            f.write(FASTAPI_APP.format(model=args.model))
        port = free_port()
        py = subprocess.Popen([sys.executable, "-m", "uvicorn", "serve:app", "--port", str(port), "--workers", "1",
                               "--log-level", "warning"], cwd=app_dir, env={**os.environ, "HF_HUB_OFFLINE": "1"},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_ready(port, py)
            check = lambda got, want: got["label"] == want["label"]
            results["fastapi_rss_mib_start"] = rss_mib(py.pid)
            for c in [int(x) for x in args.clients.split(",")]:
                r = run_load(port, texts, py_ref, check, c, args.seconds)
                r["rss_mib"] = rss_mib(py.pid)
                print("fastapi", json.dumps(r), flush=True)
                results["fastapi"].append(r)
        finally:
            py.send_signal(signal.SIGTERM)
            try:
                py.wait(timeout=30)
            except subprocess.TimeoutExpired:
                py.kill()

    print()
    print("| clients | ft req/s | ft p50 ms | ft p99 ms | FastAPI req/s | FastAPI p50 ms | FastAPI p99 ms | ratio |")
    print("|---|---|---|---|---|---|---|---|")
    for i, r in enumerate(results["ft"]):
        p = results["fastapi"][i] if i < len(results["fastapi"]) else None
        if p:
            print(f"| {r['clients']} | {r['rps']:.1f} | {r['p50_ms']:.0f} | {r['p99_ms']:.0f} | {p['rps']:.1f} | "
                  f"{p['p50_ms']:.0f} | {p['p99_ms']:.0f} | {r['rps'] / max(p['rps'], 1e-9):.2f}x |")
        else:
            print(f"| {r['clients']} | {r['rps']:.1f} | {r['p50_ms']:.0f} | {r['p99_ms']:.0f} | | | | |")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
