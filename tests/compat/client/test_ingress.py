"""Node ingress through the unmodified `mergetb` client: a materialized experiment's node gets a
tcp and an http ingress with `NewIngress`, trellisd's ingress serves them (the tcp gateway
port reaches the node's sshd; the http path has a route), and `DeleteIngress` takes them away.

mergetb 1.3.16 has no ingress helpers, so the calls are made like its own `Materialization`
methods: the generated stub over the client's channel with its auth metadata.

Needs trellisd with the ingress controller in `up` (node-ingress HTTPS endpoint on 127.0.0.1,
tcp gateway ports on 127.0.0.1) and the built-in facility (root, crun), like test_materialize.
"""
import socket
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest
from grpclib.client import Channel

import mergetbapi.portal.v1 as api
import mergetbapi.xir as xir
from mergetb.grpc_client import MergeGRPCConfig, set_grpc_config
from mergetb.identity import Identity
from mergetb.materialize import Materialization
from mergetb.mergetb import asyncio_run, do_grpc_call
from mergetb.realize import Realization
from mergetb import workspace as ws

USER = "ingrid"
PASSWORD = "compat-password-ing"
REALIZATION, EXPERIMENT = "i1", "duo"

DUO = """from mergexp import *
net = Network('duo', addressing == ipv4, routing == static)
a, b = [net.node(n) for n in ['a', 'b']]
net.connect([a, b])
experiment(net)
"""


class Ingresses(Materialization):
    """The ingress RPCs, written the way mergetb writes the other Materialize calls."""

    async def _async_new_ingress(self, protocol, host, port):
        return await api.MaterializeStub(self.get_channel()).new_ingress(
            api.NewIngressRequest(project=self.project, experiment=self.experiment,
                                  realization=self.name, protocol=protocol, host=host, port=port),
            metadata=self.get_auth_metadata())

    async def _async_delete_ingress(self, protocol, host, port):
        return await api.MaterializeStub(self.get_channel()).delete_ingress(
            api.DeleteIngressRequest(project=self.project, experiment=self.experiment,
                                     realization=self.name, protocol=protocol, host=host, port=port),
            metadata=self.get_auth_metadata())

    async def _async_ingresses(self):
        return await api.MaterializeStub(self.get_channel()).get_materialization(
            api.GetMaterializationRequest(project=self.project, experiment=self.experiment,
                                          realization=self.name, include_ingresses=True),
            metadata=self.get_auth_metadata())

    def new_ingress(self, protocol, host, port):
        return do_grpc_call(self._async_new_ingress, protocol, host, port)

    def delete_ingress(self, protocol, host, port):
        return do_grpc_call(self._async_delete_ingress, protocol, host, port)

    def ingresses(self):
        return do_grpc_call(self._async_ingresses).ingresses.ingresses


@pytest.fixture(scope="module")
def materialized(portal, tmp_path_factory):
    set_grpc_config(MergeGRPCConfig(portal["host"], portal["port"], ssl=False))

    async def register():
        channel = Channel(portal["host"], portal["port"], ssl=False)
        try:
            await api.IdentityStub(channel).register(api.RegisterRequest(
                username=USER, email=f"{USER}@example.org", password=PASSWORD, name="Ingrid",
                institution="Other", category="Researcher", country="US"))
        finally:
            channel.close()
    asyncio_run(register())
    admin = Identity("admin", portal["admin_password"]).login().token
    ws.User(USER, token=admin).activate()
    token = Identity(USER, PASSWORD).login().token
    ws.Experiment(EXPERIMENT, USER, description="ingress compat", token=token).create()
    model = tmp_path_factory.mktemp("models") / "duo.py"
    model.write_text(DUO)
    revision = ws.Experiment(EXPERIMENT, USER, token=token).push_model(str(model)).revision
    Realization(REALIZATION, EXPERIMENT, USER, revision=revision, token=token).realize()
    mtz = Ingresses(REALIZATION, EXPERIMENT, USER, token=token)
    mtz.materialize()
    deadline = time.time() + 120
    while True:
        got = mtz.get_status()
        if got.status.highest_status == api.TaskStatusStatusType.Success:
            break
        assert got.status.highest_status != api.TaskStatusStatusType.Error, got.status
        assert time.time() < deadline, "the materialization did not come up"
        time.sleep(0.5)
    yield mtz
    mtz.dematerialize()
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            mtz.get()
        except Exception:
            break
        time.sleep(0.5)
    Realization(REALIZATION, EXPERIMENT, USER, token=token).relinquish()


def eventually(what, check, timeout=30):
    """Polls `check` until it returns a true value (the ingress follows the store)."""
    deadline = time.time() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.time() < deadline, f"gave up waiting for {what}"
        time.sleep(0.2)


def banner(port):
    """The first line the gateway port sends, or None when nothing listens there."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.settimeout(5)
            return s.recv(256).decode(errors="replace")
    except OSError:
        return None


def http_status(url):
    """GET through the node-ingress HTTPS endpoint (a development CA, so unverified)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with urllib.request.urlopen(url, timeout=10, context=context) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def find(ingresses, protocol, host, port):
    return next((i for i in ingresses if (i.protocol, i.hostname, i.hostport) == (protocol, host, port)), None)


def test_tcp_and_http_ingress_are_served_and_removed(materialized):
    mtz = materialized

    mtz.new_ingress(xir.Protocol.tcp, "a", 22)
    tcp = eventually("the tcp ingress record", lambda: find(mtz.ingresses(), "tcp", "a", 22))
    assert tcp.ingress == f"tcp://{tcp.gateway}:{tcp.gatewayport}"
    # The gateway port reaches the node's sshd.
    first = eventually("the tcp gateway port", lambda: banner(tcp.gatewayport))
    assert first.startswith("SSH-2.0-"), first

    mtz.new_ingress(xir.Protocol.http, "a", 80)
    http = eventually("the http ingress record", lambda: find(mtz.ingresses(), "http", "a", 80))
    url = urllib.parse.urlsplit(http.ingress)
    assert url.path == f"/{http.mzid}/a/80/", http.ingress
    local = f"https://127.0.0.1:{url.port or 443}{url.path}"
    # Nothing listens on the node's port 80: a route gives 502 (bad gateway), no route 404.
    eventually("the http route", lambda: http_status(local) == 502)
    assert http_status(f"https://127.0.0.1:{url.port or 443}/{http.mzid}/a/81/") == 404

    mtz.delete_ingress(xir.Protocol.tcp, "a", 22)
    eventually("the tcp gateway port to close", lambda: banner(tcp.gatewayport) is None)
    mtz.delete_ingress(xir.Protocol.http, "a", 80)
    eventually("the http route to go", lambda: http_status(local) == 404)
    assert find(mtz.ingresses(), "tcp", "a", 22) is None
