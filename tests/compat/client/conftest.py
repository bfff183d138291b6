"""Starts a real trellisd (the binary cargo built) on a free loopback port for the session.

The portal runs with a temporary data directory and a known administrator password; it is
stopped by PID, and its directory removed, when the session ends.
"""
import json
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[3]
ADMIN_PASSWORD = "compat-admin-password"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


XDC_BRIDGE = "trxcompat0"


def remove_xdcs(data):
    """XDC containers outlive `trellisd` by design (a restart adopts them), so the session
    removes the ones its portal started: crun containers whose bundle is under its data
    directory, their network namespaces (which takes their veths), and its bridge."""
    listed = subprocess.run(["crun", "list", "--format", "json"], capture_output=True, text=True)
    try:
        containers = json.loads(listed.stdout or "[]")
    except ValueError:
        containers = []
    for c in containers:
        if str(c.get("bundle", "")).startswith(data) and c.get("id", "").startswith("trx-"):
            subprocess.run(["crun", "delete", "--force", c["id"]], capture_output=True)
            subprocess.run(["ip", "netns", "delete", c["id"]], capture_output=True)
    subprocess.run(["ip", "link", "delete", XDC_BRIDGE], capture_output=True)


@pytest.fixture(scope="session")
def portal():
    binary = pathlib.Path(os.environ.get("TRELLISD", ROOT / "target" / "debug" / "trellisd"))
    if not binary.exists():
        pytest.fail(f"{binary} is missing: run `cargo build --workspace` first")
    data = tempfile.mkdtemp(prefix="trellis-compat-")
    port = free_port()
    jump_port = free_port()
    web_port = free_port()
    ingress_port = free_port()
    log = open(os.path.join(data, "trellisd.log"), "w")
    env = dict(os.environ, TRELLIS_ADMIN_PASSWORD=ADMIN_PASSWORD)
    proc = subprocess.Popen(
        [str(binary), "up", "--data-dir", os.path.join(data, "state"), "--listen", f"127.0.0.1:{port}",
         "--jump-listen", f"127.0.0.1:{jump_port}", "--xdc-web-listen", f"127.0.0.1:{web_port}",
         # Its own XDC bridge and subnet, so a portal already running here is not disturbed.
         "--xdc-bridge", XDC_BRIDGE, "--xdc-subnet", "10.252.0.0/24",
         "--ingress-https", f"127.0.0.1:{ingress_port}"],
        stdout=log, stderr=subprocess.STDOUT, env=env,
    )
    try:
        deadline = time.time() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.time() > deadline:
                log.flush()
                raise RuntimeError("trellisd did not come up:\n" + open(log.name).read())
            time.sleep(0.1)
        yield {"host": "127.0.0.1", "port": port, "admin_password": ADMIN_PASSWORD,
               "jump_port": jump_port, "web_port": web_port}
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        remove_xdcs(data)
        shutil.rmtree(data, ignore_errors=True)
