"""The unmodified `mergetb` client (and the `mergetbapi` stubs it is built on) against trellisd.

Where a `mergetb` 1.3.16 wrapper is broken by itself (it passes the wrong types to
mergetbapi 1.6.0 before any network traffic), the test calls the package's own stub directly,
as the client's documentation for `Identity.register` already requires.
"""
import asyncio

import pytest
from grpclib.client import Channel
from grpclib.const import Status
from grpclib.exceptions import GRPCError

import mergetbapi.portal.v1 as api
from mergetb.grpc_client import MergeGRPCConfig, MergeGRPCError, set_grpc_config
from mergetb.identity import Identity
from mergetb.mergetb import asyncio_run
from mergetb import workspace as ws

PASSWORD = "compat-password-1"
PUBKEY = ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDpe4rDpR/hTRtRvu6MBJnwMYagUEvrUTRoQgCCudRGv compat")
FINGERPRINT = "SHA256:tHbtxCRA0+jhzQkhZRwjUdboGYYsWZV3l1tNvuTH2Nk"


def call(portal, coro_fn, token=None):
    """Runs a stub call on the client's own event loop with a fresh channel."""
    async def run():
        channel = Channel(portal["host"], portal["port"], ssl=False)
        try:
            metadata = {"authorization": f"Bearer {token}"} if token else None
            return await coro_fn(channel, metadata)
        finally:
            channel.close()
    return asyncio_run(run())


def register(portal, username):
    return call(portal, lambda ch, md: api.IdentityStub(ch).register(api.RegisterRequest(
        username=username, email=f"{username}@example.org", password=PASSWORD, name=username.title(),
        institution="Other", category="Researcher", country="US")))


def login(portal, username, password=PASSWORD):
    ident = Identity(username, password)
    return ident.login().token


def grpc_code(excinfo):
    err = excinfo.value
    return err.grpc_error.status if isinstance(err, MergeGRPCError) else err.status


@pytest.fixture(scope="module", autouse=True)
def configure(portal):
    set_grpc_config(MergeGRPCConfig(portal["host"], portal["port"], ssl=False))


def test_end_to_end_workspace_flow(portal):
    # register -> admin activates -> login
    register(portal, "alice")
    register(portal, "bob")
    register(portal, "mallory")
    admin = login(portal, "admin", portal["admin_password"])
    for name in ["alice", "bob", "mallory"]:
        ws.User(name, token=admin).activate()
    alice = login(portal, "alice")

    user = ws.User("alice", token=alice).get().user
    assert user.state == api.UserState.Active
    assert "alice" in user.projects, "every user gets a personal project"

    # add a public key
    ws.User("alice", token=alice).add_public_key(PUBKEY)
    keys = ws.User("alice", token=alice).get_public_keys().keys
    assert [k.fingerprint for k in keys] == [FINGERPRINT]

    # create a project (the 1.3.16 wrapper passes a str where a message belongs; use the stub)
    call(portal, lambda ch, md: api.WorkspaceStub(ch).create_project(api.CreateProjectRequest(
        user="alice", project=api.Project(name="netlab", description="network lab",
                                          access_mode=api.AccessMode.Private)), metadata=md), token=alice)
    project = ws.Project("netlab", token=alice).get().project
    assert project.members["alice"].role == api.MemberRole.Creator

    # add a member
    ws.Project("netlab", token=alice).add_member(
        "bob", api.Member(role=api.MemberRole.Member, state=api.MemberState.Active))
    assert ws.Project("netlab", token=alice).get_member("bob").member.role == api.MemberRole.Member

    # create an experiment (the wrapper works here)
    ws.Experiment("hello", "netlab", description="first experiment", token=alice).create()
    exp = ws.Experiment("hello", "netlab", token=alice).get().experiment
    assert exp.creator == "alice" and exp.project == "netlab"

    # list with filters: ByUser shows mine, ByAll shows everything I may read
    bob = login(portal, "bob")
    mine = call(portal, lambda ch, md: api.WorkspaceStub(ch).get_projects(
        api.GetProjectsRequest(filter=api.FilterMode.ByUser), metadata=md), token=bob).projects
    assert sorted(p.name for p in mine) == ["bob", "netlab"]
    exps = call(portal, lambda ch, md: api.WorkspaceStub(ch).get_experiments(
        api.GetExperimentsRequest(filter=api.FilterMode.ByAll), metadata=md), token=bob).experiments
    # (Other test modules' public experiments share this portal; look at this test's projects.)
    ours = [(e.name, e.project) for e in exps if e.project in ("netlab", "alice", "bob")]
    assert ours == [("hello", "netlab")]

    # a non-member is denied, and private objects are filtered from its lists
    outsider = login(portal, "mallory")
    with pytest.raises((MergeGRPCError, GRPCError)) as denied:
        ws.Project("netlab", token=outsider).get()
    assert grpc_code(denied) == Status.PERMISSION_DENIED
    assert "Title:" in str(denied.value), "Merge-style BadRequest details are printed by the client"
    visible = call(portal, lambda ch, md: api.WorkspaceStub(ch).get_projects(
        api.GetProjectsRequest(filter=api.FilterMode.ByAll), metadata=md), token=outsider).projects
    assert "netlab" not in [p.name for p in visible]

    # no token at all is UNAUTHENTICATED
    with pytest.raises(GRPCError) as unauth:
        call(portal, lambda ch, md: api.WorkspaceStub(ch).get_projects(api.GetProjectsRequest()))
    assert unauth.value.status == Status.UNAUTHENTICATED
    assert unauth.value.message == "no access token provided"


def test_bad_input_gets_clear_errors(portal):
    with pytest.raises(GRPCError) as bad:
        call(portal, lambda ch, md: api.IdentityStub(ch).register(api.RegisterRequest(
            username="Not Valid", email="x@example.org", password=PASSWORD)))
    assert bad.value.status == Status.INVALID_ARGUMENT
    assert "lowercase" in bad.value.message

    with pytest.raises(GRPCError) as wrong:
        call(portal, lambda ch, md: api.IdentityStub(ch).login(
            api.LoginRequest(username="admin", password="wrong-password")))
    assert wrong.value.status == Status.UNAUTHENTICATED


def test_logout_revokes_the_token(portal):
    register(portal, "carol")
    admin = login(portal, "admin", portal["admin_password"])
    ws.User("carol", token=admin).activate()
    ident = Identity("carol", PASSWORD)
    token = ident.login().token
    assert call(portal, lambda ch, md: api.WorkspaceStub(ch).whoami(api.WhoamiRequest(), metadata=md),
                token=token).whoami == "carol"
    ident.logout()
    with pytest.raises(GRPCError) as revoked:
        call(portal, lambda ch, md: api.WorkspaceStub(ch).whoami(api.WhoamiRequest(), metadata=md), token=token)
    assert revoked.value.status == Status.UNAUTHENTICATED


HELLO = """from mergexp import *
net = Network('hello', addressing==ipv4, routing==static)
a, b, c = [net.node(n, proc.cores>=2, memory.capacity>=gb(4)) for n in ['a', 'b', 'c']]
net.connect([a, b], capacity==mbps(100), latency==ms(10))
net.connect([b, c])
experiment(net)
"""

BROKEN = """from mergexp import *
net = Network('broken')
a = net.node('a')
b = net.node(undefined_name)
experiment(net)
"""


def test_models_compile_push_and_revisions(portal, tmp_path):
    from mergetb.model import Model

    register(portal, "dana")
    admin = login(portal, "admin", portal["admin_password"])
    ws.User("dana", token=admin).activate()
    dana = login(portal, "dana")
    ws.Experiment("hello", "dana", description="models", token=dana).create()

    good = tmp_path / "model.py"
    good.write_text(HELLO)
    bad = tmp_path / "broken.py"
    bad.write_text(BROKEN)

    # Model.Compile through the client's own wrapper.
    compiled = Model(str(good), token=dana).compile()
    assert compiled.success, compiled.errors
    failed = Model(str(bad), token=dana).compile()
    assert not failed.success
    assert any("line 4" in e and "NameError" in e for e in failed.errors), failed.errors

    # Model.Push through the Experiment wrapper; the revision id is the content hash.
    import hashlib
    pushed = ws.Experiment("hello", "dana", token=dana).push_model(str(good), tag="v1")
    assert pushed.revision == hashlib.sha256(HELLO.encode()).hexdigest()

    # A model that fails to compile is refused and reported, not kept.
    with pytest.raises(MergeGRPCError) as refused:
        ws.Experiment("hello", "dana", token=dana).push_model(str(bad))
    assert refused.value.grpc_error.status == Status.INVALID_ARGUMENT
    assert "NameError" in str(refused.value)

    # GetRevision by tag, by branch and by id returns the compiled network.
    for ref in ["v1", "master", pushed.revision]:
        rev = call(portal, lambda ch, md: api.WorkspaceStub(ch).get_revision(api.GetRevisionRequest(
            project="dana", experiment="hello", revision=ref), metadata=md), token=dana)
        assert rev.model.compiled
        assert sorted(n.id for n in rev.model.model.nodes) == ["a", "b", "c"]
        assert len(rev.model.model.links) == 2
        assert rev.model_file == HELLO

    exp = ws.Experiment("hello", "dana", token=dana).get(with_models=True)
    assert list(exp.models.keys()) == [pushed.revision]
