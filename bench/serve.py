"""Serve a farm on 127.0.0.1 with Debian's nginx (ETag/304, gzip) and an optional per-request delay proxy.

nginx listens on one port per host (`base_port + h`) and serves `<farm>/www/<port>/`; gzip is
pre-compressed (`gzip_static`, so the server's own CPU stays out of the way) with `gzip on` as
the fallback; ETag and Last-Modified come from the files' deterministic mtimes.

nginx cannot add latency, so with `--latency-ms` nginx moves to `base_port + 1000 + h` and a small
asyncio proxy takes the public ports: every chunk the client sends (one GET request on a keep-alive
connection) is forwarded `latency` later; responses flow back at once. So each request's time to
first byte grows by the latency; connection setup does not. The proxy is a separate process that
shares the cores with the client under test (measured: see bench/RESULTS.md).

    python bench/serve.py --dir /tmp/farm [--latency-ms 100]     # serves until Ctrl-C
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

BACKEND_OFFSET = 1000
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


def nginx_conf(run_dir: Path, www: Path, ports: list[int]) -> str:
    listens = "\n".join(f"    listen 127.0.0.1:{p} reuseport backlog=4096;" for p in ports)
    user = "user root;" if os.geteuid() == 0 else ""
    temp = "\n".join(f"  {k}_temp_path {run_dir}/{k};" for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    return f"""{user}
worker_processes 1;
worker_rlimit_nofile 16384;
pid {run_dir}/nginx.pid;
error_log {run_dir}/error.log warn;
events {{ worker_connections 8192; }}
http {{
  access_log off;
  default_type application/xml;
  sendfile on;
  tcp_nopush on;
  keepalive_timeout 75s;
  keepalive_requests 100000;
  etag on;
  gzip_static on;
  gzip on;
  gzip_types application/xml application/rss+xml application/atom+xml;
  gzip_vary on;
{temp}
  server {{
{listens}
    root {www}/$server_port;
    location /feeds/ {{ }}
  }}
}}
"""


class Server:
    """nginx (daemonized, so its CPU is never counted as a client's child) plus the optional proxy."""

    def __init__(self, farm_dir: Path, base_port: int, hosts: int, latency_ms: float) -> None:
        self.run_dir = farm_dir / "nginx"
        self.www = farm_dir / "www"
        self.public = [base_port + h for h in range(hosts)]
        self.latency_ms = latency_ms
        self.proxy: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        backend = self.public if not self.latency_ms else [p + BACKEND_OFFSET for p in self.public]
        if self.latency_ms:  # nginx serves <www>/<public port>: link the backend port's folder to it
            for p in self.public:
                link = self.www / str(p + BACKEND_OFFSET)
                if not link.exists():
                    link.symlink_to(self.www / str(p))
        conf = self.run_dir / "nginx.conf"
        conf.write_text(nginx_conf(self.run_dir, self.www, backend))
        subprocess.run([NGINX, "-c", str(conf), "-p", str(self.run_dir)], check=True)
        if self.latency_ms:
            self.proxy = subprocess.Popen(
                [sys.executable, __file__, "proxy", "--ports", ",".join(map(str, self.public)),
                 "--latency-ms", str(self.latency_ms)], start_new_session=True)
        _wait_listening(self.public)

    def stop(self) -> None:
        if self.proxy is not None:
            self.proxy.terminate()
            self.proxy.wait()
            self.proxy = None
        pid_file = self.run_dir / "nginx.pid"
        if pid_file.exists():
            pid = int(pid_file.read_text())
            os.kill(pid, signal.SIGQUIT)
            for _ in range(100):
                if not pid_file.exists():
                    break
                time.sleep(0.05)

    def proxy_cpu_s(self) -> float:
        """CPU the delay proxy has used so far (it shares the cores with the tool under test)."""
        if self.proxy is None:
            return 0.0
        import psutil

        t = psutil.Process(self.proxy.pid).cpu_times()
        return float(t.user + t.system)


def _wait_listening(ports: list[int]) -> None:
    import socket

    deadline = time.monotonic() + 10
    for p in ports:
        while True:
            try:
                socket.create_connection(("127.0.0.1", p), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)


# --- delay proxy -------------------------------------------------------------------------------

class _Upstream(asyncio.Protocol):
    def __init__(self, client: asyncio.Transport) -> None:
        self.client = client

    def data_received(self, data: bytes) -> None:
        self.client.write(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.client.close()


class _Client(asyncio.Protocol):
    def __init__(self, backend_port: int, delay_s: float) -> None:
        self.backend_port, self.delay_s = backend_port, delay_s
        self.upstream: asyncio.Transport | None = None
        self.pending: list[bytes] = []
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        asyncio.get_running_loop().create_task(self._connect())

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            up, _ = await loop.create_connection(lambda: _Upstream(self.transport), "127.0.0.1", self.backend_port)
        except OSError:
            self.transport.close()
            return
        self.upstream = up  # type: ignore[assignment]
        for chunk in self.pending:
            up.write(chunk)
        self.pending.clear()
        if self.closed:
            up.close()

    def _forward(self, data: bytes) -> None:
        if self.upstream is None:
            self.pending.append(data)
        elif not self.upstream.is_closing():
            self.upstream.write(data)

    def data_received(self, data: bytes) -> None:
        # One GET per chunk on a keep-alive connection: delay each request, not each connection.
        asyncio.get_running_loop().call_later(self.delay_s, self._forward, data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.upstream is not None:
            asyncio.get_running_loop().call_later(self.delay_s, self.upstream.close)


async def _proxy(ports: list[int], delay_s: float) -> None:
    loop = asyncio.get_running_loop()
    for p in ports:
        await loop.create_server(lambda p=p: _Client(p + BACKEND_OFFSET, delay_s), "127.0.0.1", p,
                                 backlog=4096, reuse_address=True)
    parent = os.getppid()
    while os.getppid() == parent:  # die with whoever started us, even if it was killed
        await asyncio.sleep(1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", nargs="?", default="serve", choices=("serve", "proxy"))
    ap.add_argument("--dir", type=Path)
    ap.add_argument("--ports", default="")
    ap.add_argument("--latency-ms", type=float, default=0.0)
    args = ap.parse_args()
    if args.mode == "proxy":
        asyncio.run(_proxy([int(p) for p in args.ports.split(",")], args.latency_ms / 1000))
        return
    sys.path.insert(0, str(Path(__file__).parent))
    from farm import load

    farm, _ = load(args.dir)
    server = Server(args.dir, farm.base_port, farm.hosts, args.latency_ms)
    server.start()
    print(f"serving {farm.n} feeds on 127.0.0.1:{farm.base_port}-{farm.base_port + farm.hosts - 1}"
          f" (latency {args.latency_ms} ms); urls in {args.dir}/urls.txt; Ctrl-C to stop", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    main()
