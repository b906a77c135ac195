"""A doppel ui server on a free localhost port, in this process, with a fresh work folder."""
from __future__ import annotations

import threading

import pytest

from doppel.ui.server import UIConfig, make_server


def start(workdir, worker=None, **cfg):
    server = make_server(UIConfig(workdir=workdir, host="127.0.0.1", port=0, **cfg), worker)
    server.app.queue.start()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def stop(server) -> None:
    server.shutdown()
    server.server_close()
    server.app.queue.close()


@pytest.fixture
def ui(tmp_path):
    """(base URL, server) of a running app whose work folder is tmp_path/work."""
    server = start(tmp_path / "work", max_upload_mb=4)
    yield f"http://127.0.0.1:{server.server_address[1]}", server
    stop(server)
