"""The portal's API through its own front door: `trellisd serve ingress` with a YAML
configuration that routes an endpoint to the running portal, and the unmodified `mergetb`
client talking gRPC through it (login, reads, writes, errors with their details).
"""
import os
import signal
import subprocess
import time

import pytest
from grpclib.client import Channel

import mergetbapi.portal.v1 as api
from mergetb.grpc_client import MergeGRPCConfig, MergeGRPCError, set_grpc_config
from mergetb.identity import Identity
from mergetb.mergetb import asyncio_run
from mergetb import workspace as ws

from conftest import ROOT, free_port

USER = "ingo"
PASSWORD = "compat-password-ingo"


@pytest.fixture(scope="module")
def front_door(portal, tmp_path_factory):
    """`trellisd serve ingress` in front of the session's portal; stopped by PID afterwards."""
    directory = tmp_path_factory.mktemp("ingress")
    port, admin = free_port(), free_port()
    config = directory / "ingress.yml"
    config.write_text(f"""
admin:
  listen: 127.0.0.1:{admin}
endpoints:
  - name: api
    listen: 127.0.0.1:{port}
    protocol: http
pools:
  api:
    backends: [127.0.0.1:{portal["port"]}]
    health_check: {{ type: http, path: /healthz, interval: 1s, timeout: 1s }}
routes:
  - {{ id: api, host: "*", pool: api, endpoints: [api] }}
""")
    binary = os.environ.get("TRELLISD", str(ROOT / "target" / "debug" / "trellisd"))
    log = open(directory / "ingress.log", "w")
    proc = subprocess.Popen(
        [binary, "serve", "ingress", "--ingress-config", str(config), "--data-dir", str(directory / "state")],
        stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 30
        while True:
            try:
                import urllib.request
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.time() > deadline:
                log.flush()
                raise RuntimeError("the ingress did not come up:\n" + (directory / "ingress.log").read_text())
            time.sleep(0.1)
        yield {"host": "127.0.0.1", "port": port, "admin_password": portal["admin_password"]}
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def test_the_mergetb_client_works_through_the_ingress(front_door):
    set_grpc_config(MergeGRPCConfig(front_door["host"], front_door["port"], ssl=False))

    async def register():
        channel = Channel(front_door["host"], front_door["port"], ssl=False)
        try:
            await api.IdentityStub(channel).register(api.RegisterRequest(
                username=USER, email=f"{USER}@example.org", password=PASSWORD, name="Ingo",
                institution="Other", category="Researcher", country="US"))
        finally:
            channel.close()
    asyncio_run(register())
    admin = Identity("admin", front_door["admin_password"]).login().token
    ws.User(USER, token=admin).activate()
    token = Identity(USER, PASSWORD).login().token
    assert ws.User(USER, token=token).get().user.username == USER
    ws.Experiment("viaproxy", USER, description="through the ingress", token=token).create()
    got = ws.Experiment("viaproxy", USER, token=token).get().experiment
    assert got.description == "through the ingress"
    # Errors keep their code and Merge-style details through the proxy.
    with pytest.raises(MergeGRPCError) as denied:
        ws.Experiment("viaproxy", USER, token="not-a-token").get()
    assert "Unauthenticated" in str(denied.value) or "token" in str(denied.value)
