"""Materialization through the unmodified `mergetb` client: `mergetb.materialize.Materialization`
materializes a realization on trellisd's built-in `local` facility (real containers in network
namespaces, run by crun), reads its status until every node is up, and dematerializes it."""
import time

import pytest
from grpclib.client import Channel
from grpclib.const import Status

import mergetbapi.portal.v1 as api
from mergetb.grpc_client import MergeGRPCConfig, MergeGRPCError, set_grpc_config
from mergetb.identity import Identity
from mergetb.materialize import Materialization
from mergetb.mergetb import asyncio_run
from mergetb.realize import Realization
from mergetb import workspace as ws

USER = "mona"
PASSWORD = "compat-password-mtz"

TRIO = """from mergexp import *
net = Network('trio', addressing == ipv4, routing == static)
a, b, c = [net.node(n) for n in ['a', 'b', 'c']]
net.connect([a, b], capacity == mbps(100), latency == ms(10))
net.connect([b, c])
experiment(net)
"""


@pytest.fixture(scope="module")
def mona(portal, tmp_path_factory):
    set_grpc_config(MergeGRPCConfig(portal["host"], portal["port"], ssl=False))

    async def register():
        channel = Channel(portal["host"], portal["port"], ssl=False)
        try:
            await api.IdentityStub(channel).register(api.RegisterRequest(
                username=USER, email=f"{USER}@example.org", password=PASSWORD, name="Mona",
                institution="Other", category="Researcher", country="US"))
        finally:
            channel.close()
    asyncio_run(register())
    admin = Identity("admin", portal["admin_password"]).login().token
    ws.User(USER, token=admin).activate()
    token = Identity(USER, PASSWORD).login().token
    ws.Experiment("trio", USER, description="materialize compat", token=token).create()
    model = tmp_path_factory.mktemp("models") / "trio.py"
    model.write_text(TRIO)
    revision = ws.Experiment("trio", USER, token=token).push_model(str(model)).revision
    Realization("m1", "trio", USER, revision=revision, token=token).realize()
    return token


def wait_for(mtz, states, timeout=120):
    """Polls the status until its highest state is one of `states`; returns the last answer."""
    deadline = time.time() + timeout
    while True:
        got = mtz.get_status()
        if got.status.highest_status in states or time.time() > deadline:
            return got
        time.sleep(0.5)


def test_materialize_status_dematerialize(mona):
    mtz = Materialization("m1", "trio", USER, token=mona)
    made = mtz.materialize().materialization
    assert (made.rid, made.eid, made.pid) == ("m1", "trio", USER)
    assert sorted(vm.vm_alloc.node for vm in made.vms) == ["a", "b", "c"]
    assert all(vm.infranet_addr for vm in made.vms)

    got = wait_for(mtz, {api.TaskStatusStatusType.Success, api.TaskStatusStatusType.Error})
    assert got.status.highest_status == api.TaskStatusStatusType.Success, got.status
    assert got.summary.highest_status == api.TaskStatusStatusType.Success
    names = []

    def walk(tree):
        names.append(tree.task.name)
        for sub in tree.subtasks:
            walk(sub)
    walk(got.status)
    for element in ["a", "b", "c"]:
        assert any(element in n for n in names), names

    with pytest.raises(MergeGRPCError) as twice:
        mtz.materialize()
    assert twice.value.grpc_error.status == Status.ALREADY_EXISTS

    mtz.dematerialize()
    deadline = time.time() + 60
    while True:
        try:
            mtz.get()
        except MergeGRPCError as gone:
            assert gone.grpc_error.status == Status.NOT_FOUND
            break
        assert time.time() < deadline, "the materialization did not go away"
        time.sleep(0.5)
    Realization("m1", "trio", USER, token=mona).relinquish()
