"""prod-local's supervisor (deploy/prod_local.py) starts a process again when it dies, children and all."""

from __future__ import annotations

import os
import time

from deploy.prod_local import Spec, Supervisor, procfile


def _until(condition, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "not within the timeout"
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead too: only its parent's wait() is missing.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_a_killed_process_and_its_children_are_replaced(tmp_path):
    # A parent with a child of its own, like gunicorn's master and workers.
    child_file = tmp_path / "child"
    spec = Spec("web.1", f"bash -c 'sleep 300 & echo $! > {child_file}; wait'")
    supervisor = Supervisor([spec, Spec("beat.1", "sleep 300")], {**os.environ}, tmp_path).start()
    try:
        first = supervisor.pid("web.1")
        _until(lambda: child_file.exists() and child_file.read_text().strip())
        child = int(child_file.read_text())
        child_file.unlink()
        beat = supervisor.pid("beat.1")
        assert supervisor.kill("web.1") == first
        _until(lambda: supervisor.pid("web.1") != first)
        assert supervisor.restarts == {"web.1": 1, "beat.1": 0}
        _until(lambda: not _alive(first) and not _alive(child))  # the child went with its parent
        _until(lambda: child_file.exists() and child_file.read_text().strip())  # and the new one has its own
        assert _alive(supervisor.pid("web.1"))
        assert supervisor.pid("beat.1") == beat  # the others are left alone
    finally:
        supervisor.stop()
    assert not _alive(supervisor.pid("web.1")) and not _alive(supervisor.pid("beat.1"))


def test_the_procfile_gives_two_web_processes_on_consecutive_ports():
    specs = {spec.name: spec for spec in procfile(8100)}
    assert set(specs) == {"web.1", "web.2", "worker_webhooks.1", "worker_batch.1", "beat.1"}
    assert (specs["web.1"].env, specs["web.2"].env) == ({"PORT": "8100"}, {"PORT": "8101"})
    assert "gunicorn" in specs["web.1"].command and "-Q webhooks" in specs["worker_webhooks.1"].command
