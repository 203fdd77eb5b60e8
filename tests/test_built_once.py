"""tests/conftest.py's built_once: a folder shared by the pytest-xdist workers, built once;
a failed build is removed, a crashed one is never built into again."""

import pytest

from conftest import built_once


class Factory:
    """A stand-in for pytest's TempPathFactory: only getbasetemp()."""

    def __init__(self, base):
        self.base = base

    def getbasetemp(self):
        return self.base


def test_built_once_builds_once_and_a_crashed_build_is_never_reused(tmp_path, monkeypatch):
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    calls = []

    def build(folder):
        assert not folder.exists()
        calls.append(folder)
        folder.mkdir()
        (folder / "data.txt").write_text("built")

    factory = Factory(tmp_path)
    first = built_once(factory, "thing", build)
    assert built_once(factory, "thing", build) == first and len(calls) == 1
    assert first.parent == tmp_path / "built_once" and first.name.startswith("thing-")
    assert (tmp_path / "built_once" / "thing.done").read_text() == first.name

    # a worker killed mid-build leaves a folder and no marker; a recipe it started may still
    # write there, so the next build goes to a new folder and the old one is left alone
    crashed = tmp_path / "built_once" / "other-crashed"
    crashed.mkdir()
    (crashed / "partial.txt").write_text("still being written")
    rebuilt = built_once(factory, "other", build)
    assert rebuilt != crashed and (crashed / "partial.txt").is_file()
    assert (rebuilt / "data.txt").read_text() == "built"

    # a marker that names no folder (emptied, or its folder deleted) is built again
    (tmp_path / "built_once" / "other.done").write_text("")
    again = built_once(factory, "other", build)
    assert again not in (rebuilt, crashed) and (again / "data.txt").is_file()
    assert sorted(p.name for p in (tmp_path / "built_once").glob("other.done*")) == ["other.done"]


def test_built_once_removes_a_failed_build_and_builds_again(tmp_path, monkeypatch):
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    factory = Factory(tmp_path)

    def fail(folder):
        folder.mkdir()
        (folder / "half.txt").write_text("half")
        raise RuntimeError("build failed")

    with pytest.raises(RuntimeError, match="build failed"):
        built_once(factory, "thing", fail)
    assert sorted(p.name for p in (tmp_path / "built_once").iterdir()) == ["thing.lock"]
    folder = built_once(factory, "thing", lambda f: f.mkdir())
    assert folder.is_dir() and (tmp_path / "built_once" / "thing.done").is_file()


def test_built_once_under_xdist_shares_the_parent_of_the_workers_base(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw1")
    worker_base = tmp_path / "popen-gw1"
    worker_base.mkdir()
    folder = built_once(Factory(worker_base), "thing", lambda f: f.mkdir())
    assert folder.parent == tmp_path / "built_once"
