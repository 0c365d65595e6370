"""Lua scripts kept in .lua files beside their module, each called with named keys and arguments.

A script file opens with comment lines that declare it (before its first line of code):

    -- keys: rate                 names of KEYS[1], KEYS[2], ... in the order given
    -- args: gap, spec:json       names of ARGV[1], ...; `:json` ones arrive decoded (cjson)
    -- uses: gateway/store.fill.lib   library files (gateway/store.fill.lib.lua) it calls

and the script's code uses those names as locals. `Script(__name__, "reserve")` in
gateway/pacing.py is the file gateway/pacing.reserve.lua, read once at import; calling it
with keyword arguments maps each name to its position, so no caller counts positions, and a
name missing or unknown is a TypeError. Run by EVALSHA, loaded again if Redis lost it.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from importlib import resources
from typing import TYPE_CHECKING, Any

from redis.exceptions import NoScriptError

if TYPE_CHECKING:
    from gateway.store import Redis

_HEADER = re.compile(r"--\s*(keys|args|uses):(.*)")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def _text(path: str) -> str:
    """The text of `gateway/store.fill.lib` (gateway/store.fill.lib.lua, found as package data)."""
    folder, _, name = path.rpartition("/")
    return (resources.files(folder.replace("/", ".")) / f"{name}.lua").read_text(encoding="utf-8")


def _header(source: str) -> dict[str, list[str]]:
    declared: dict[str, list[str]] = {"keys": [], "args": [], "uses": []}
    for line in source.splitlines():
        if not line.startswith("--"):
            break
        if m := _HEADER.match(line):
            declared[m[1]] += [n.strip() for n in m[2].split(",") if n.strip()]
    return declared


def _libraries(uses: list[str]) -> list[str]:
    """`uses` and what they use in turn, each once, a library before whatever needs it."""
    order: list[str] = []

    def visit(name: str) -> None:
        if name not in order:
            for inner in _header(_text(name))["uses"]:
                visit(inner)
            order.append(name)

    for name in uses:
        visit(name)
    return order


def flat(fields: Mapping[str, str]) -> list[str]:
    """A hash as a script takes it for HSET: field, value, field, value, ..."""
    return [x for pair in fields.items() for x in pair]


def pairs(reply: list[str]) -> dict[str, str]:
    """A script's HGETALL reply (field, value, ...) as a dict."""
    return dict(zip(reply[::2], reply[1::2], strict=True))


class Script:
    """One script: its full source (libraries, then the named locals, then its code) and sha."""

    def __init__(self, module: str, name: str) -> None:
        package, _, stem = module.rpartition(".")
        own = _text(f"{package.replace('.', '/')}/{stem}.{name}")
        declared = _header(own)
        args = [a.split(":")[0].strip() for a in declared["args"]]
        json_args = {a.split(":")[0].strip() for a in declared["args"] if a.endswith(":json")}
        for n in (*declared["keys"], *args):
            if not _NAME.match(n):
                raise ValueError(f"{module} {name}.lua: {n!r} is not a Lua name")
        prelude = [f"local {k} = KEYS[{i}]" for i, k in enumerate(declared["keys"], 1)]
        prelude += [f"local {a} = cjson.decode(ARGV[{i}])" if a in json_args
                    else f"local {a} = ARGV[{i}]" for i, a in enumerate(args, 1)]
        self.source = "\n".join([*(_text(u) for u in _libraries(declared["uses"])), *prelude, own])
        self.sha = hashlib.sha1(self.source.encode()).hexdigest()
        self.keys = tuple(declared["keys"])
        self.args = tuple(args)
        self.json_args = frozenset(json_args)

    def __call__(self, r: Redis, **named: object) -> Any:
        """Run the script with every declared key and argument given by name."""
        unknown = set(named) - set(self.keys) - set(self.args)
        missing = [n for n in (*self.keys, *self.args) if n not in named]
        if unknown or missing:
            raise TypeError(f"lua script: unknown {sorted(unknown)}, missing {missing}")
        values = [named[k] for k in self.keys]
        values += [json.dumps(named[a], ensure_ascii=False) if a in self.json_args else named[a]
                   for a in self.args]
        # (types-redis leaves the script commands unannotated: their replies are the script's)
        try:
            return r.evalsha(self.sha, len(self.keys), *values)  # type: ignore[no-untyped-call]
        except NoScriptError:  # Redis restarted or was flushed of scripts: load it once more
            r.script_load(self.source)  # type: ignore[no-untyped-call]
            return r.evalsha(self.sha, len(self.keys), *values)  # type: ignore[no-untyped-call]
