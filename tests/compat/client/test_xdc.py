"""XDCs through the unmodified `mergetb` client, the stock OpenSSH client and Jupyter's own API.

A member creates a shared XDC with `mergetb.xdc.XDC`, waits for it through `get()`, then:
- reaches it with `ssh -J` through the portal's jump host, with the portal-issued certificate
  (`Cred.GetUserSSHCert`) and with a registered public key;
- copies 100 MB with scp through the jump host and gets the same bytes back;
- finds a file in /home/<user> again after deleting and recreating the XDC;
- starts a Jupyter kernel through the XDC web proxy and runs `1+1` over its WebSocket API.
A non-member, an unregistered key and anonymous web requests are refused.
"""
import hashlib
import json
import os
import subprocess
import time
import urllib.error
import urllib.request
import uuid

import pytest
import websocket
from grpclib.client import Channel

import mergetbapi.portal.v1 as api
from mergetb.cred import Cred
from mergetb.grpc_client import MergeGRPCConfig, MergeGRPCError, set_grpc_config
from mergetb.identity import Identity
from mergetb.materialize import Materialization
from mergetb.mergetb import asyncio_run
from mergetb.realize import Realization
from mergetb.xdc import XDC
from mergetb import workspace as ws

MEMBER, OUTSIDER = "xena", "yuri"
PASSWORD = "compat-password-xdc"


def register(portal, username):
    async def call():
        channel = Channel(portal["host"], portal["port"], ssl=False)
        try:
            await api.IdentityStub(channel).register(api.RegisterRequest(
                username=username, email=f"{username}@example.org", password=PASSWORD, name=username,
                institution="Other", category="Researcher", country="US"))
        finally:
            channel.close()
    asyncio_run(call())


def grpc(portal, token, call):
    """Runs `call(channel, metadata)` against the portal with `token`."""
    async def run():
        channel = Channel(portal["host"], portal["port"], ssl=False)
        try:
            return await call(channel, {"authorization": f"Bearer {token}"})
        finally:
            channel.close()
    return asyncio_run(run())


def ssh_files(directory, username, token):
    """The user's portal key pair and certificate, as `mrg login` installs them."""
    cred = Cred(username, token=token)
    keys = cred.get_user_ssh_keys()
    cert = cred.get_user_ssh_cert()
    key = directory / "merge_key"
    key.write_text(keys.keys.private)
    key.chmod(0o600)
    (directory / "merge_key.pub").write_text(keys.keys.public)
    (directory / "merge_key-cert.pub").write_text(cert.cert.cert)
    (directory / "known_hosts").write_text(f"@cert-authority * {cert.cert.ca_host_pub_key}\n")
    return key


def ssh_config(directory, portal, username, identity, certificate=True, log_level="ERROR"):
    """An ssh_config reaching XDCs through the jump host with one identity and nothing else."""
    cert = f"  CertificateFile {identity}-cert.pub\n" if certificate else ""
    path = directory / f"config-{identity.name}"
    path.write_text(
        f"Host mergejump\n  HostName 127.0.0.1\n  Port {portal['jump_port']}\n  User {username}\n"
        f"Host *-*\n  User {username}\n  ProxyJump mergejump\n"
        f"Host *\n  IdentityFile {identity}\n{cert}  IdentitiesOnly yes\n"
        f"  UserKnownHostsFile {directory}/known_hosts\n  StrictHostKeyChecking yes\n"
        f"  BatchMode yes\n  ConnectTimeout 20\n  LogLevel {log_level}\n"
    )
    return path


def ssh(config, *command, check=True):
    return subprocess.run(["ssh", "-F", str(config), *command], capture_output=True, text=True,
                          timeout=120, check=check)


def wait_running(xdc, timeout=90):
    deadline = time.time() + timeout
    while True:
        got = xdc.get()
        if got.status.highest_status == api.TaskStatusStatusType.Success:
            return got
        assert got.status.highest_status != api.TaskStatusStatusType.Error, got.status
        assert time.time() < deadline, f"XDC not running after {timeout} s: {got.status}"
        time.sleep(0.3)


def wait_ssh(config, target, timeout=60):
    """sshd starts a moment after the container: retry until a login works."""
    deadline = time.time() + timeout
    while True:
        done = ssh(config, target, "true", check=False)
        if done.returncode == 0:
            return
        assert time.time() < deadline, done.stderr
        time.sleep(0.3)


@pytest.fixture(scope="module")
def people(portal, tmp_path_factory):
    set_grpc_config(MergeGRPCConfig(portal["host"], portal["port"], ssl=False))
    admin = Identity("admin", portal["admin_password"]).login().token
    tokens = {}
    for name in (MEMBER, OUTSIDER):
        register(portal, name)
        ws.User(name, token=admin).activate()
        tokens[name] = Identity(name, PASSWORD).login().token
    home = tmp_path_factory.mktemp("ssh")
    # A registered key, added before the XDC exists so it is in the XDC from the start.
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(home / "registered")], check=True)
    ws.User(MEMBER, token=tokens[MEMBER]).add_public_key((home / "registered.pub").read_text())
    xdc = XDC("x0", MEMBER, xdctype=api.XdcType.shared, token=tokens[MEMBER])
    xdc.create()
    wait_running(xdc)
    key = ssh_files(home, MEMBER, tokens[MEMBER])
    config = ssh_config(home, portal, MEMBER, key)
    wait_ssh(config, f"x0-{MEMBER}")
    people = {"tokens": tokens, "home": home, "config": config, "xdc": xdc}
    yield people
    # The portal's controller stops it; conftest removes anything still left when the portal exits.
    people["xdc"].delete()


def test_xdc_info_list_and_jump_hosts(portal, people):
    token = people["tokens"][MEMBER]
    got = people["xdc"].get()
    assert got.xdc.name == f"x0.{MEMBER}"
    assert got.xdc.fqdn == f"x0-{MEMBER}"
    assert got.xdc.creator == MEMBER
    assert got.xdc.type == api.XdcType.shared
    assert any(u.url.endswith(f"/{MEMBER}/x0/") for u in got.xdc.urls)

    listed = grpc(portal, token, lambda ch, md: api.XdcStub(ch).list_xd_cs(
        api.ListXdCsRequest(project=MEMBER), metadata=md))
    assert [x.name for x in listed.xd_cs] == [f"x0.{MEMBER}"]
    # The outsider sees none of them, and may not read this one.
    outsider = people["tokens"][OUTSIDER]
    assert grpc(portal, outsider, lambda ch, md: api.XdcStub(ch).list_xd_cs(
        api.ListXdCsRequest(), metadata=md)).xd_cs == []
    with pytest.raises(MergeGRPCError) as denied:
        XDC("x0", MEMBER, token=outsider).get()
    assert "Permission denied" in str(denied.value)

    jumps = grpc(portal, token, lambda ch, md: api.XdcStub(ch).get_xdc_jump_hosts(
        api.GetXdcJumpHostsRequest(), metadata=md))
    assert [(j.fqdn, j.port) for j in jumps.jump_hosts] == [("127.0.0.1", portal["jump_port"])]


def test_bad_requests_are_refused_clearly(portal, people):
    token = people["tokens"][MEMBER]
    with pytest.raises(MergeGRPCError) as bad:
        XDC("X-bad", MEMBER, token=token).create()
    assert "xdc" in str(bad.value)
    with pytest.raises(MergeGRPCError) as taken:
        XDC("x0", MEMBER, token=token).create()
    assert "already exists" in str(taken.value)
    with pytest.raises(MergeGRPCError) as missing:
        people["xdc"].attach("nope", "nothing", MEMBER)
    assert "experiment nothing.xena not found" in str(missing.value)
    ws.Experiment("idle", MEMBER, description="never realized", token=token).create()
    with pytest.raises(MergeGRPCError) as unmaterialized:
        people["xdc"].attach("nope", "idle", MEMBER)
    assert "nope.idle.xena is not materialized" in str(unmaterialized.value)


def test_ssh_through_the_jump_host_with_the_portal_certificate(people):
    out = ssh(people["config"], f"x0-{MEMBER}", "id -un; hostname; test -w /home/xena && test -w /project/xena && echo ok").stdout.split()
    assert out == [MEMBER, f"x0-{MEMBER}", "ok"]


def test_ssh_with_a_registered_key(portal, people):
    home = people["home"]
    config = ssh_config(home, portal, MEMBER, home / "registered", certificate=False)
    assert ssh(config, f"x0-{MEMBER}", "id -un").stdout.strip() == MEMBER


def test_unregistered_key_and_outsider_are_refused(portal, people, tmp_path):
    home = people["home"]
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(home / "stranger")], check=True)
    config = ssh_config(home, portal, MEMBER, home / "stranger", certificate=False)
    refused = ssh(config, f"x0-{MEMBER}", "true", check=False)
    assert refused.returncode != 0
    assert "Permission denied" in refused.stderr

    outsider_dir = tmp_path / "outsider"
    outsider_dir.mkdir()
    key = ssh_files(outsider_dir, OUTSIDER, people["tokens"][OUTSIDER])
    # INFO: the jump hop (a separate ssh process) prints why its channel was refused.
    config = ssh_config(outsider_dir, portal, OUTSIDER, key, log_level="INFO")
    refused = ssh(config, f"x0-{MEMBER}", "true", check=False)
    assert refused.returncode != 0
    # The jump host says why: the policy's reason travels in the channel-open failure.
    assert "administratively prohibited" in refused.stderr, refused.stderr
    assert "Project.Member" in refused.stderr, refused.stderr
    # And the jump host is no shell.
    shell = ssh(config, "mergejump", "true", check=False)
    assert shell.returncode != 0


def test_scp_100_mb_arrives_intact(people, tmp_path):
    source = tmp_path / "blob"
    with open(source, "wb") as f:
        for _ in range(100):
            f.write(os.urandom(1 << 20))
    back = tmp_path / "back"
    target = f"x0-{MEMBER}"
    subprocess.run(["scp", "-F", str(people["config"]), "-q", str(source), f"{target}:/home/{MEMBER}/blob"],
                   check=True, timeout=300)
    remote = ssh(people["config"], target, f"sha256sum /home/{MEMBER}/blob").stdout.split()[0]
    subprocess.run(["scp", "-F", str(people["config"]), "-q", f"{target}:/home/{MEMBER}/blob", str(back)],
                   check=True, timeout=300)
    local = hashlib.sha256(source.read_bytes()).hexdigest()
    assert remote == local
    assert hashlib.sha256(back.read_bytes()).hexdigest() == local
    ssh(people["config"], target, f"rm /home/{MEMBER}/blob")


def jupyter_request(portal, path, token=None, method="GET", body=None, accept="application/json"):
    request = urllib.request.Request(f"http://127.0.0.1:{portal['web_port']}{path}", method=method,
                                     data=None if body is None else json.dumps(body).encode())
    request.add_header("Accept", accept)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    if body is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def test_jupyter_kernel_through_the_web_proxy(portal, people):
    token = people["tokens"][MEMBER]
    base = f"/{MEMBER}/x0"
    deadline = time.time() + 60
    while True:
        status, _ = jupyter_request(portal, f"{base}/api/status", token)
        if status == 200 or time.time() > deadline:
            break
        time.sleep(0.5)
    assert status == 200
    assert jupyter_request(portal, f"{base}/api/status")[0] == 401
    assert jupyter_request(portal, f"{base}/api/status", people["tokens"][OUTSIDER])[0] == 403

    status, body = jupyter_request(portal, f"{base}/api/kernels", token, "POST", {"name": "python3"})
    assert status == 201, body
    kernel = json.loads(body)["id"]
    try:
        ws_url = f"ws://127.0.0.1:{portal['web_port']}{base}/api/kernels/{kernel}/channels"
        conn = websocket.create_connection(ws_url, header=[f"Authorization: Bearer {token}"], timeout=60)
        msg_id = uuid.uuid4().hex
        conn.send(json.dumps({
            "header": {"msg_id": msg_id, "username": MEMBER, "session": uuid.uuid4().hex,
                       "msg_type": "execute_request", "version": "5.3"},
            "parent_header": {}, "metadata": {}, "channel": "shell",
            "content": {"code": "1+1", "silent": False, "store_history": False,
                        "user_expressions": {}, "allow_stdin": False, "stop_on_error": True},
        }))
        result = None
        deadline = time.time() + 60
        while result is None and time.time() < deadline:
            message = json.loads(conn.recv())
            if message.get("parent_header", {}).get("msg_id") == msg_id \
                    and message["header"]["msg_type"] == "execute_result":
                result = message["content"]["data"]["text/plain"]
        conn.close()
        assert result == "2"
    finally:
        jupyter_request(portal, f"{base}/api/kernels/{kernel}", token, "DELETE")


DUO = """from mergexp import *
net = Network('duo', addressing == ipv4, routing == static)
a, b = [net.node(n) for n in ['a', 'b']]
net.connect([a, b])
experiment(net)
"""


def attach_state(xdc):
    """The attach subtask's state and message, if an attachment is wanted."""
    status = xdc.get().status
    for sub in status.subtasks:
        if sub.task.name.startswith("attach "):
            return sub.task.status_value, sub.task.message.message if sub.task.message else ""
    return None, ""


def test_attach_reaches_experiment_nodes_by_name(portal, people, tmp_path):
    token = people["tokens"][MEMBER]
    ws.Experiment("duo", MEMBER, description="xdc attach", token=token).create()
    model = tmp_path / "duo.py"
    model.write_text(DUO)
    revision = ws.Experiment("duo", MEMBER, token=token).push_model(str(model)).revision
    Realization("d1", "duo", MEMBER, revision=revision, token=token).realize()
    mtz = Materialization("d1", "duo", MEMBER, token=token)
    mtz.materialize()
    try:
        deadline = time.time() + 120
        while mtz.get_status().status.highest_status != api.TaskStatusStatusType.Success:
            assert time.time() < deadline, "the materialization did not come up"
            time.sleep(0.5)
        xdc = people["xdc"]
        xdc.attach("d1", "duo", MEMBER)
        deadline = time.time() + 60
        while True:
            state, message = attach_state(xdc)
            if state in (api.TaskStatusStatusType.Success, api.TaskStatusStatusType.Error):
                break
            assert time.time() < deadline, "the attachment did not complete"
            time.sleep(0.3)
        assert state == api.TaskStatusStatusType.Success, message
        assert xdc.get().xdc.materialization == f"d1.duo.{MEMBER}"
        target = f"x0-{MEMBER}"
        # From the XDC, the user's portal identity logs in to the experiment's nodes by name.
        assert ssh(people["config"], target, "ssh a hostname").stdout.strip() == "a"
        assert ssh(people["config"], target, f"ssh b.infra.d1.duo.{MEMBER} id -un").stdout.strip() == MEMBER
        assert "search infra.d1.duo." + MEMBER in ssh(people["config"], target, "cat /etc/resolv.conf").stdout

        xdc.detach()
        deadline = time.time() + 60
        while attach_state(xdc)[0] is not None or ssh(people["config"], target, "grep -q infra /etc/hosts", check=False).returncode == 0:
            assert time.time() < deadline, "the attachment was not removed"
            time.sleep(0.3)
        gone = ssh(people["config"], target, "ssh -o ConnectTimeout=3 a true", check=False)
        assert gone.returncode != 0
    finally:
        mtz.dematerialize()


def test_home_survives_deleting_and_recreating_the_xdc(portal, people):
    target = f"x0-{MEMBER}"
    ssh(people["config"], target, f"echo kept > /home/{MEMBER}/notes.txt")
    token = people["tokens"][MEMBER]
    people["xdc"].delete()
    deadline = time.time() + 60
    while True:
        gone = ssh(people["config"], target, "true", check=False)
        if gone.returncode != 0:
            break
        assert time.time() < deadline, "the XDC still answers after deletion"
        time.sleep(0.5)
    again = XDC("x0", MEMBER, xdctype=api.XdcType.shared, token=token)
    again.create()
    wait_running(again)
    wait_ssh(people["config"], target)
    assert ssh(people["config"], target, f"cat /home/{MEMBER}/notes.txt").stdout.strip() == "kept"
    people["xdc"] = again
