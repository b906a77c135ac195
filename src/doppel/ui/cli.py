"""`doppel ui [--host 127.0.0.1] [--port 7860] [--workdir DIR]`: serve the local web app until Ctrl-C."""
from __future__ import annotations

import argparse
import logging
import signal
from pathlib import Path

from .. import interrupt
from ..errors import DoppelError

log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on; anything but 127.0.0.1 lets other machines in (there is no login)")
    p.add_argument("--port", type=int, default=7860, help="TCP port (0: any free one)")
    p.add_argument("--workdir", default="doppel_ui", help="folder for uploads, jobs, face sets and models")
    p.add_argument("--max-upload-mb", type=int, default=1024, help="largest upload accepted (MiB)")


def run(args: argparse.Namespace) -> int:
    from .server import LOOPBACK, UIConfig, make_server
    if args.max_upload_mb < 1 or not 0 <= args.port < 65536:
        raise DoppelError(f"--max-upload-mb must be >= 1 and --port 0-65535 (got {args.max_upload_mb}, {args.port})")
    cfg = UIConfig(workdir=Path(args.workdir), host=args.host, port=args.port, max_upload_mb=args.max_upload_mb)
    try:
        server = make_server(cfg)
    except OSError as e:
        raise DoppelError(f"cannot listen on {args.host}:{args.port}: {e.strerror or e}") from None
    if args.host not in LOOPBACK:
        log.warning("doppel ui listens on %s: other machines can reach it, and it has no login; anyone who can "
                    "connect can upload files and run jobs. Use --host 127.0.0.1 unless you mean it.", args.host)
    host, port = server.server_address[:2]
    print(f"doppel ui: http://{'127.0.0.1' if host == '0.0.0.0' else host}:{port}/  (work folder "
          f"{server.app.root}; Ctrl-C to quit)", flush=True)
    # SIGINT and SIGTERM stop the server as Ctrl-C does (the running job saves first), also when it was
    # started in the background, where the shell leaves SIGINT ignored
    interrupt.install(also=(signal.SIGTERM,))
    server.app.queue.start()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("doppel ui: stopping (a running job saves and stops first)", flush=True)
    finally:
        server.server_close()
        server.app.queue.close()
    return 0
