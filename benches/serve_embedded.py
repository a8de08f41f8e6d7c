"""Runs the embedded server (``client.Server``) for the benchmark.

``python benches/serve_embedded.py [--data PATH] [--fsync POLICY]`` listens
on 127.0.0.1 (a free port), prints ``host port`` and serves until its stdin
closes. Exit status 3 when this build of ``client`` has no ``Server``.
"""

import argparse
import sys

try:
    from client import Server
except ImportError:
    try:  # built, but not exported by the package yet
        from client._native import Server
    except ImportError as e:  # the server is not in this build yet
        print(f"client.Server is not available: {e}", file=sys.stderr)
        sys.exit(3)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--data")
    parser.add_argument("--fsync", default="everysec")
    args = parser.parse_args()
    with Server(host="127.0.0.1", port=0, data=args.data, fsync=args.fsync) as server:
        host, port = server.address[:2]
        print(host, port, flush=True)
        sys.stdin.read()  # until the benchmark closes our stdin (or dies)


if __name__ == "__main__":
    main()
