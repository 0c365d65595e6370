"""gateway/lua.py: scripts in .lua files, called by name, on the real Redis."""

from __future__ import annotations

import fnmatch
import tomllib
from pathlib import Path

import pytest

from gateway.context import Hotline
from gateway.lua import Script

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("gateway", "workers", "ivr")

# store.claim.lua: keys key; args field, now, stale_before, ttl
CLAIM = Script("gateway.store", "claim")


def _script_files() -> list[Path]:
    return sorted(p for package in PACKAGES for p in (ROOT / package).rglob("*.lua"))


def test_a_missing_named_argument_is_a_type_error(hl: Hotline) -> None:
    with pytest.raises(TypeError, match=r"missing \['ttl'\]"):
        CLAIM(hl.r, key="k", field="", now="1", stale_before="")
    assert hl.r.exists("k") == 0


def test_an_unknown_named_argument_is_a_type_error(hl: Hotline) -> None:
    with pytest.raises(TypeError, match=r"unknown \['lease'\]"):
        CLAIM(hl.r, key="k", field="", now="1", stale_before="", ttl="", lease="5")
    assert hl.r.exists("k") == 0


def test_a_script_runs_again_after_redis_forgot_its_scripts(hl: Hotline) -> None:
    assert CLAIM(hl.r, key="a", field="", now="1", stale_before="", ttl="") == 1
    hl.r.script_flush()
    assert hl.r.script_exists(CLAIM.sha) == [False]
    assert CLAIM(hl.r, key="b", field="", now="1", stale_before="", ttl="") == 1
    assert hl.r.script_exists(CLAIM.sha) == [True]
    assert CLAIM(hl.r, key="b", field="", now="2", stale_before="", ttl="") == 0  # held: refused


def test_a_library_used_twice_over_is_included_once() -> None:
    intake = Script("gateway.conversation", "intake")  # fill: its own use and its libraries'
    assert intake.source.count("local function fill(") == 1
    assert intake.source.index("local function fill(") < intake.source.index(
        "local function open_ticket(")


def test_every_script_file_compiles_in_redis(hl: Hotline) -> None:
    scripts = [p for p in _script_files() if not p.name.endswith(".lib.lua")]
    assert scripts
    for path in scripts:
        package = ".".join(path.parent.relative_to(ROOT).parts)
        module, name = path.name.removesuffix(".lua").split(".", 1)
        script = Script(f"{package}.{module}", name)
        assert hl.r.script_load(script.source) == script.sha, path


def test_no_lua_is_left_in_python_files() -> None:
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            text = path.read_text(encoding="utf-8")
            assert "redis.call(" not in text, path
            assert "register_script" not in text and ".eval(" not in text, path


def test_every_script_file_is_package_data() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    data = config["tool"]["setuptools"]["package-data"]
    for path in _script_files():
        package = ".".join(path.parent.relative_to(ROOT).parts)
        patterns = data.get(package, []) + data.get("*", [])
        assert any(fnmatch.fnmatch(path.name, p) for p in patterns), path
