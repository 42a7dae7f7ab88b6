"""The suite runs offline: any attempt to reach the network fails loudly, here and in kernels.

``tests/conftest.py`` installs :mod:`course_lib.netguard` in the pytest process
and, through ``COURSE_BLOCK_NETWORK=1`` and ``tests/netguard_site`` on
``PYTHONPATH``, in every Python process the tests start: nbval's notebook
kernels, JupyterLab's kernels, plain subprocesses.  These tests prove it, and
prove that loopback (which Jupyter needs) still works.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import threading
import urllib.error
import urllib.request

import pytest

from course_lib import netguard

# A public address given as a literal IP, so the test needs no DNS: only the guard can stop it.
OUTSIDE = ("93.184.215.14", 80)
BLOCKED = "network access is blocked"


def test_guard_is_on_for_the_whole_run():
    assert netguard.is_installed()
    assert os.environ["COURSE_BLOCK_NETWORK"] == "1"


def test_connect_to_outside_raises_a_clear_error():
    with pytest.raises(netguard.NetworkBlockedError, match=BLOCKED) as info:
        socket.create_connection(OUTSIDE, timeout=2)
    assert "93.184.215.14" in str(info.value)  # the message names where it tried to go
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s, pytest.raises(netguard.NetworkBlockedError):
        s.connect_ex(OUTSIDE)


def test_ipv6_outside_is_blocked_too():
    if not socket.has_ipv6:
        pytest.skip("this Python has no IPv6 support")
    with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s, pytest.raises(netguard.NetworkBlockedError):
        s.connect(("2606:2800:220:1:248:1893:25c8:1946", 80, 0, 0))


def test_urllib_download_fails_loudly():
    """What a library download (torch.hub, pip, urllib) would do: it errors, it does not hang or succeed."""
    with pytest.raises(urllib.error.URLError) as info:
        urllib.request.urlopen(f"http://{OUTSIDE[0]}/weights.pth", timeout=5)
    assert isinstance(info.value.reason, netguard.NetworkBlockedError)
    assert BLOCKED in str(info.value.reason)


def test_opted_in_weights_download_is_still_blocked(tmp_path, monkeypatch):
    """Even a learner's explicit download=True cannot reach the network under the tests."""
    import torch

    import course_lib as cl

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))  # an empty cache: nothing to find locally
    monkeypatch.setattr(cl.weights, "offline_package_dir", lambda: None)
    with pytest.raises(OSError):  # URLError / NetworkBlockedError / DNS failure: all OSError, none silent
        cl.weights.resolve("resnet18", download=True)
    assert not (tmp_path / "checkpoints" / "resnet18-f37072fd.pth").exists()


def test_loopback_still_works():
    """Jupyter talks to its kernels over 127.0.0.1: the guard must leave loopback open."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        port = server.getsockname()[1]

        def answer():
            conn, _ = server.accept()
            with conn:
                conn.sendall(b"hello")

        t = threading.Thread(target=answer, daemon=True)
        t.start()
        with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
            assert c.recv(5) == b"hello"
        t.join(timeout=5)


PROBE = textwrap.dedent(
    f"""
    import socket
    try:
        socket.create_connection({OUTSIDE!r}, timeout=2)
        print("CONNECTED")
    except Exception as err:
        print("BLOCKED", type(err).__name__, err)
    """
)


def test_subprocess_python_is_offline():
    """Any Python the tests start picks the guard up from PYTHONPATH (sitecustomize)."""
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120, env=os.environ)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("BLOCKED NetworkBlockedError"), out.stdout + out.stderr
    assert BLOCKED in out.stdout


@pytest.mark.slow
def test_fresh_jupyter_kernel_is_offline():
    """A kernel started the way nbval and JupyterLab start one is offline, and says so loudly."""
    from jupyter_client.manager import start_new_kernel

    km, kc = start_new_kernel(kernel_name="python3", env=dict(os.environ))
    try:
        code = f"import socket\nsocket.create_connection({OUTSIDE!r}, timeout=2)"
        reply = kc.execute_interactive(code, timeout=120, output_hook=lambda msg: None)
        content = reply["content"]
        assert content["status"] == "error"
        assert content["ename"] == "NetworkBlockedError"
        assert BLOCKED in content["evalue"]
        # ... and the kernel is alive and usable afterwards: a blocked connection is an error, not a crash.
        outputs: list[str] = []

        def hook(msg):
            if msg["header"]["msg_type"] == "stream":
                outputs.append(msg["content"]["text"])

        reply = kc.execute_interactive("print(6 * 7)", timeout=60, output_hook=hook)
        assert reply["content"]["status"] == "ok"
        assert "".join(outputs).strip() == "42"
        assert km.is_alive()
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


@pytest.mark.slow
def test_nbval_kernel_is_offline(tmp_path):
    """The notebooks run under ``pytest --nbval-lax``; a notebook cell there cannot reach the network either."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(textwrap.dedent(f"""
        import socket
        from course_lib.netguard import NetworkBlockedError
        try:
            socket.create_connection({OUTSIDE!r}, timeout=2)
            raise AssertionError("the notebook kernel reached the network")
        except NetworkBlockedError as err:
            assert "{BLOCKED}" in str(err)
        """))]
    path = tmp_path / "reach_out.ipynb"
    nbformat.write(nb, path)
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "--nbval-lax", str(path), "-q", "-p", "no:cacheprovider",
         "--rootdir", str(tmp_path), "-c", os.devnull],
        capture_output=True, text=True, timeout=300, cwd=tmp_path, env=os.environ,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert "1 passed" in out.stdout
