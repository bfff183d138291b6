"""XDC create → first SSH login through the jump host, against a running `trellisd up`.

Usage: .venv/bin/python xdc/bench/create_to_login.py HOST PORT USER PASSWORD SSH_CONFIG [N]

SSH_CONFIG must reach `<xdc>-<USER>` through the portal's jump host with the user's portal key
and certificate (what `trellis login` installs). Each round creates a personal XDC `b<i>` in
the user's personal project, retries `ssh <xdc>-<user> true` every 20 ms until it succeeds,
records the time since the create call started, and deletes the XDC.
"""
import statistics
import subprocess
import sys
import time

from mergetb.grpc_client import MergeGRPCConfig, set_grpc_config
from mergetb.identity import Identity
from mergetb.xdc import XDC


def main():
    host, port, user, password, config = sys.argv[1:6]
    rounds = int(sys.argv[6]) if len(sys.argv) > 6 else 5
    set_grpc_config(MergeGRPCConfig(host, int(port), ssl=False))
    token = Identity(user, password).login().token
    times = []
    for i in range(rounds):
        name = f"b{i}"
        start = time.monotonic()
        XDC(name, user, token=token).create()
        while subprocess.run(["ssh", "-F", config, f"{user}@{name}-{user}", "true"],
                             capture_output=True).returncode != 0:
            time.sleep(0.02)
        times.append(time.monotonic() - start)
        XDC(name, user, token=token).delete()
        time.sleep(1.5)
    print("create -> first ssh login (s):", [round(t, 3) for t in times],
          "median", round(statistics.median(times), 3), "max", round(max(times), 3))


if __name__ == "__main__":
    main()
