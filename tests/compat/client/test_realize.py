"""Realizations through the unmodified `mergetb` client against trellisd's built-in `local`
facility (this machine, offered as one VM host).

`mergetb.realize.Realization` is used as-is for realize, get and relinquish. Its `update()` is
broken in mergetb 1.3.16 by itself: it builds `ReservationDuration(when=ReservationDurationCode
.given, ...)`, names that do not exist in mergetbapi 1.6.0 (the message is `Duration`, the enum
`DurationCode`), so it raises NameError before sending anything. The test shows that, then sends
the same request the method means to send, over the client's own channel and metadata.
"""
import time

import pytest
from grpclib.client import Channel
from grpclib.const import Status

import mergetbapi.portal.v1 as api
from mergetb.grpc_client import MergeGRPCClient, MergeGRPCConfig, MergeGRPCError, set_grpc_config
from mergetb.identity import Identity
from mergetb.mergetb import asyncio_run, do_grpc_call
from mergetb.realize import Realization
from mergetb import workspace as ws

USER = "rita"
PASSWORD = "compat-password-rlz"

PAIR = """from mergexp import *
net = Network('pair')
a, b = [net.node(n) for n in ['a', 'b']]
net.connect([a, b])
experiment(net)
"""

# Valid, but the VM-only local facility has no bare-metal machine.
METAL = """from mergexp import *
net = Network('metal')
net.node('iron', metal == True)
experiment(net)
"""

DAY = 24 * 3600


def seven_days():
    return api.Duration(when=api.DurationCode.given, duration="7d")


def stub_call(fn, token):
    """Runs a stub call over the client's channel, metadata and event loop, as realize.py does."""
    client = MergeGRPCClient(token=token)

    async def run():
        return await fn(client.get_channel(), client.get_auth_metadata())
    return do_grpc_call(run)


@pytest.fixture(scope="module")
def rita(portal, tmp_path_factory):
    set_grpc_config(MergeGRPCConfig(portal["host"], portal["port"], ssl=False))

    async def register():
        channel = Channel(portal["host"], portal["port"], ssl=False)
        try:
            await api.IdentityStub(channel).register(api.RegisterRequest(
                username=USER, email=f"{USER}@example.org", password=PASSWORD, name="Rita",
                institution="Other", category="Researcher", country="US"))
        finally:
            channel.close()
    asyncio_run(register())
    admin = Identity("admin", portal["admin_password"]).login().token
    ws.User(USER, token=admin).activate()
    token = Identity(USER, PASSWORD).login().token

    ws.Experiment("pair", USER, description="realize compat", token=token).create()
    models = tmp_path_factory.mktemp("models")
    (models / "pair.py").write_text(PAIR)
    (models / "metal.py").write_text(METAL)
    # The realizable model goes last, so it is also the newest on master.
    ws.Experiment("pair", USER, token=token).push_model(str(models / "metal.py"), tag="metal")
    revision = ws.Experiment("pair", USER, token=token).push_model(str(models / "pair.py"), tag="v1").revision

    local = stub_call(lambda ch, md: api.CommissionStub(ch).get_facility(
        api.GetFacilityRequest(name="local", with_model=True), metadata=md), token)
    hosts = [r.id for r in local.model.resources]
    assert len(hosts) == 1, hosts
    return {"token": token, "revision": revision, "host": hosts[0]}


def test_realize_get_list_update_relinquish(rita):
    token = rita["token"]
    rlz = Realization("r1", "pair", USER, revision=rita["revision"], duration=seven_days(), token=token)
    response = rlz.realize()
    assert response.code == api.RealizeResponseCode.Ok
    r = response.realization
    assert (r.id, r.eid, r.pid, r.xhash) == ("r1", "pair", USER, rita["revision"])
    assert sorted(r.nodes) == ["a", "b"]

    got = rlz.get()
    r = got.result.realization
    assert r.complete
    assert sorted(r.nodes) == ["a", "b"]
    for name, node in r.nodes.items():
        assert node.facility == "local", name
        assert node.resource.id == rita["host"], name
        assert node.kind == api.NodeRealizationKind.VirtualMachine, name
        assert node.node.id == name
        assert node.infranet_addr, f"{name} has no infranet address"
    assert len(r.links) == 1
    (link,) = r.links.values()
    ends = sorted(e.node for s in link.segments.values() for e in s.endpoints)
    assert ends == ["a", "b"]
    lifetime = r.expires.timestamp() - r.created.timestamp()
    assert 7 * DAY - 60 <= lifetime <= 7 * DAY + 60
    assert got.result.summary.num_nodes == 2 and got.result.summary.num_links == 1
    assert got.status.highest_status == api.TaskStatusStatusType.Success

    listed = stub_call(lambda ch, md: api.RealizeStub(ch).get_realizations(
        api.GetRealizationsRequest(filter=api.FilterMode.ByUser), metadata=md), token).results
    mine = [x for x in listed if (x.summary.id, x.summary.eid, x.summary.pid) == ("r1", "pair", USER)]
    assert len(mine) == 1, listed
    assert (mine[0].summary.num_nodes, mine[0].summary.num_links) == (2, 1)

    # The client's own update() cannot run against mergetbapi 1.6.0 (see the module docstring).
    with pytest.raises(NameError, match="ReservationDuration"):
        rlz.update("30d")
    updated = stub_call(lambda ch, md: api.RealizeStub(ch).update_realization(api.UpdateRealizationRequest(
        project=USER, experiment="pair", realization="r1",
        duration=api.Duration(when=api.DurationCode.given, duration="30d")), metadata=md), token)
    left = updated.expires.timestamp() - time.time()
    assert 30 * DAY - 300 <= left <= 30 * DAY + 60
    assert rlz.get().result.realization.expires == updated.expires

    rlz.relinquish()
    with pytest.raises(MergeGRPCError) as gone:
        rlz.get()
    assert gone.value.grpc_error.status == Status.NOT_FOUND
    listed = stub_call(lambda ch, md: api.RealizeStub(ch).get_realizations(
        api.GetRealizationsRequest(filter=api.FilterMode.ByUser), metadata=md), token).results
    assert not [x for x in listed if x.summary.id == "r1" and x.summary.pid == USER]


def test_realize_by_tag_and_branch(rita):
    token = rita["token"]
    for name, ref in [("bytag", {"tag": "v1"}), ("bybranch", {"branch": "master"})]:
        rlz = Realization(name, "pair", USER, duration=seven_days(), token=token, **ref)
        r = rlz.realize().realization
        assert r.xhash == rita["revision"], name
        assert sorted(r.nodes) == ["a", "b"], name
        rlz.relinquish()


def test_unrealizable_model_names_the_node(rita):
    rlz = Realization("m1", "pair", USER, tag="metal", duration=seven_days(), token=rita["token"])
    with pytest.raises(MergeGRPCError) as refused:
        rlz.realize()
    message = refused.value.grpc_error.message
    assert refused.value.grpc_error.status != Status.OK
    assert "iron" in message and "metal" in message, message
    assert "Title:" in str(refused.value), "Merge-style BadRequest details are printed by the client"
    with pytest.raises(MergeGRPCError) as missing:
        rlz.get()
    assert missing.value.grpc_error.status == Status.NOT_FOUND
