"""A fingerprint per env: a hash of the packages it resolves to on this machine.

An env's fingerprint is taken from ``uv.lock`` through :class:`LockGraph`: the packages
reachable from the base plus the env's extra (``full``: every supported env's extra; a
venv with dependency groups adds the groups' packages) for this machine's platform and
python minor. Each package contributes its name, version, source and the sha256 of the
wheels that fit this platform (else of its sdist). The project itself is left out: it is
installed editable, so its code is not part of the env.

A change to a package that only other envs reach leaves the digest as it was, so a new
lock makes only the envs whose packages changed stale (:func:`signal4.envs.venv.status`).

Computing a fingerprint parses the lock and evaluates markers (``packaging``), so the
digests are cached in ``envs/.fingerprints.json``, keyed by the lock's hash and this
machine: the first call after a lock change pays, later ones read one small file.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import re
import sys
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from signal4.envs import layout
from signal4.envs.lockgraph import LockGraph, holds, marker_environment, normalize, wheel_fits
from signal4.envs.manifest import FULL_ENV, PACKAGE, Manifest

#: The cache of digests, next to the envs.
CACHE_NAME = ".fingerprints.json"
#: What goes into a digest; a cache written under another format is ignored.
FORMAT = 1
DIGEST_CHARS = 16

#: (sys.platform, platform.machine(), python version): the machine a fingerprint is for.
Host = tuple[str, str, str]

_HEX = re.compile(r"^[0-9a-f]{16}$")


@dataclass(frozen=True)
class EnvFingerprint:
    """What an env resolves to on this machine, and its digest."""

    env: str
    digest: str  # 16 lowercase hex chars
    packages: dict[str, str]  # normalized name -> version, the env's resolved packages
    key: dict[str, str]  # the env's declared (direct) packages -> version

    def to_json(self) -> dict[str, object]:
        """The cache's form of this fingerprint."""
        return {"env": self.env, "digest": self.digest, "packages": self.packages, "key": self.key}


def this_host() -> Host:
    """This machine and interpreter, as the lock's markers and wheel tags see them."""
    return sys.platform, platform.machine(), platform.python_version()


def _environment(host: Host) -> tuple[dict[str, str], int]:
    """The marker environment of ``host`` and its python 3 minor.

    The full python version is the real one: a marker such as ``python_full_version <
    '3.11.3'`` (async-timeout's) must see 3.11.7 as it is, not as 3.11.0.
    """
    sys_platform, machine, version = host
    minor = _minor(host)
    environment = marker_environment(sys_platform, machine, minor)
    environment["python_full_version"] = environment["implementation_version"] = version
    return environment, minor


def _minor(host: Host) -> int:
    return int(host[2].split(".")[1])


def cache_path(manifest: Manifest) -> Path:
    """Where the digests are cached: ``envs/.fingerprints.json``."""
    return layout.envs_dir(manifest) / CACHE_NAME


# ---------------------------------------------------------------------------
# Computing from a parsed lock
# ---------------------------------------------------------------------------


def project_name(lock: Mapping[str, Any]) -> str:
    """The lock's own project: the package installed from ``.`` (``signal4`` by default)."""
    for pkg in lock.get("package", []):
        source = pkg.get("source", {})
        if source.get("editable") == "." or source.get("virtual") == ".":
            return normalize(str(pkg["name"]))
    return PACKAGE


def _with_groups(
    lock: Mapping[str, Any], project: str, extras: Sequence[str], groups: Sequence[str]
) -> Mapping[str, Any]:
    """A view of ``lock`` whose project lists the groups' packages under each extra."""
    if not groups:
        return lock
    packages = list(lock.get("package", []))
    for i, pkg in enumerate(packages):
        if normalize(str(pkg["name"])) != project:
            continue
        declared = pkg.get("dev-dependencies", {})
        unknown = [g for g in groups if g not in declared]
        if unknown:
            raise layout.EnvError(f"uv.lock has no dependency group {unknown[0]!r}")
        added = [dep for g in groups for dep in declared[g]]
        optional = dict(pkg.get("optional-dependencies", {}))
        for extra in extras:
            optional[extra] = [*optional.get(extra, []), *added]
        packages[i] = {**pkg, "optional-dependencies": optional}
        break
    return {**lock, "package": packages}


def _artifact(pkg: Mapping[str, Any], host: Host) -> str:
    """The hashes of what installs ``pkg`` here: the fitting wheels, else the sdist."""
    sys_platform, machine, minor = host[0], host[1], _minor(host)
    fitting = []
    for wheel in pkg.get("wheels", []):
        filename = str(wheel.get("filename") or wheel.get("url") or wheel.get("path") or "")
        if wheel_fits(filename.rsplit("/", 1)[-1], sys_platform, machine, minor):
            fitting.append(str(wheel.get("hash", "")))
    if fitting:
        return "wheel " + ",".join(sorted(fitting))
    sdist = pkg.get("sdist")
    if isinstance(sdist, Mapping) and sdist.get("hash"):
        return f"sdist {sdist['hash']}"
    return "none"  # a git, directory or editable source: its source names it


def compute(
    lock: Mapping[str, Any],
    env: str,
    extras: Sequence[str],
    groups: Sequence[str] = (),
    host: Host | None = None,
) -> EnvFingerprint:
    """The fingerprint of the venv with ``extras`` and ``groups``, from the parsed ``lock``."""
    host = host or this_host()
    project = project_name(lock)
    extras = tuple(extras) or ("",)  # no extra: the base alone
    graph = LockGraph(_with_groups(lock, project, extras, groups), project)
    environment, _minor = _environment(host)
    found: dict[str, set[str]] = {}
    for extra in extras:
        for name, versions in graph.reachable(extra, environment).items():
            found.setdefault(name, set()).update(versions)
    found.pop(project, None)

    lines = []
    for name in sorted(found):
        for version in sorted(found[name]):
            pkg = graph.package(name, version)
            source = json.dumps(pkg.get("source", {}), sort_keys=True, separators=(",", ":"))
            lines.append(f"{name} {version} {source} {_artifact(pkg, host)}")
    digest = hashlib.sha256("\n".join(lines).encode()).hexdigest()[:DIGEST_CHARS]
    packages = {name: ",".join(sorted(found[name])) for name in sorted(found)}

    root = graph.by_name[project][0]
    direct: set[str] = set()
    for extra in extras:
        where = {**environment, "extra": f"extra-{len(project)}-{project}-{extra}"}
        deps = [
            *root.get("dependencies", []),
            *root.get("optional-dependencies", {}).get(extra, []),
        ]
        direct.update(normalize(d["name"]) for d in deps if holds(d.get("marker"), where))
    key = {name: packages[name] for name in sorted(direct) if name in packages}
    return EnvFingerprint(env=env, digest=digest, packages=packages, key=key)


# ---------------------------------------------------------------------------
# The cache
# ---------------------------------------------------------------------------


def _selection_key(name: str, groups: Sequence[str]) -> str:
    return "+".join([name, *groups])


def _read_cache(path: Path, lock: str, host: Host) -> dict[str, Any]:
    """The cached entries for ``lock`` on ``host``; empty when the file is absent or foreign."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if (
        not isinstance(data, dict)
        or data.get("format") != FORMAT
        or data.get("lock") != lock
        or data.get("host") != list(host)
        or not isinstance(data.get("envs"), dict)
    ):
        return {}
    return dict(data["envs"])


def _entry(raw: object, env: str) -> EnvFingerprint | None:
    """A cached fingerprint, or None when the entry is missing or malformed."""
    if not isinstance(raw, dict):
        return None
    digest, packages, key = raw.get("digest"), raw.get("packages"), raw.get("key")
    if not (isinstance(digest, str) and _HEX.match(digest)):
        return None
    if not (isinstance(packages, dict) and isinstance(key, dict)):
        return None
    if not all(
        isinstance(k, str) and isinstance(v, str) for k, v in (*packages.items(), *key.items())
    ):
        return None
    return EnvFingerprint(env=env, digest=digest, packages=dict(packages), key=dict(key))


def _write_cache(path: Path, lock: str, host: Host, entries: Mapping[str, Any]) -> None:
    """Replace the cache atomically; a cache that cannot be written is only a lost speed-up."""
    import tempfile  # only when writing: the warm path reads the cache alone

    payload = {"format": FORMAT, "lock": lock, "host": list(host), "envs": dict(entries)}
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f"{CACHE_NAME}.", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(payload, fh, sort_keys=True)
            fh.write("\n")
        os.chmod(tmp, 0o644)  # as readable as the stamps (mkstemp makes it 0600)
        os.replace(tmp, path)
    except OSError:
        if tmp:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def _read_lock(manifest: Manifest) -> tuple[str, bytes]:
    """The lock's bytes and their hash (the one :func:`layout.lock_hash` gives)."""
    path = manifest.root / layout.LOCK_FILE
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise layout.EnvError(f"{path} is missing; run: inv lock") from None
    return hashlib.sha256(data).hexdigest()[:16], data


def _selections(manifest: Manifest, names: Iterable[str]) -> dict[str, tuple[str, ...]]:
    """Each env name with the extras it installs (``full``: every supported env's)."""
    out: dict[str, tuple[str, ...]] = {}
    for name in names:
        if name == FULL_ENV:
            out[name] = tuple(e.name for e in manifest.supported_envs())
            continue
        env = manifest.env(name)
        if not env.supported():
            raise layout.EnvError(f"env {name!r} is not supported on this platform")
        out[name] = (name,)
    return out


def _resolve(
    manifest: Manifest,
    wanted: Mapping[str, tuple[str, ...]],
    groups: Sequence[str] = (),
    *,
    lock: str | None = None,
) -> dict[str, EnvFingerprint]:
    """The fingerprints of ``wanted`` (name -> extras), from the cache where it has them.

    ``lock`` (the current lock hash, when the caller has it) lets a warm cache answer
    without reading ``uv.lock``; otherwise the lock is read, and what the cache lacks is
    computed and written back under the hash of the bytes read.
    """
    host = this_host()
    path = cache_path(manifest)
    keys = {name: _selection_key(name, groups) for name in wanted}
    if lock is not None:
        entries = _read_cache(path, lock, host)
        hits = {name: _entry(entries.get(keys[name]), name) for name in wanted}
        if all(hits.values()):
            return {name: fp for name, fp in hits.items() if fp}
    current, data = _read_lock(manifest)
    entries = _read_cache(path, current, host)
    result: dict[str, EnvFingerprint] = {}
    parsed: dict[str, Any] | None = None
    for name, extras in wanted.items():
        hit = _entry(entries.get(keys[name]), name)
        if hit is None:
            if parsed is None:
                try:
                    parsed = tomllib.loads(data.decode("utf-8"))
                except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
                    raise layout.EnvError(f"uv.lock cannot be read: {exc}; run: inv lock") from None
            hit = compute(parsed, name, extras, groups, host)
            entries[keys[name]] = hit.to_json()
        result[name] = hit
    if parsed is not None:
        _write_cache(path, current, host, entries)
    return result


# ---------------------------------------------------------------------------
# The API
# ---------------------------------------------------------------------------


def env_fingerprint(manifest: Manifest, name: str) -> EnvFingerprint:
    """The fingerprint of env ``name`` (or ``full``) on this machine, from the current lock."""
    return _resolve(manifest, _selections(manifest, [name]))[name]


def fingerprints(manifest: Manifest) -> dict[str, EnvFingerprint]:
    """The fingerprint of every env supported here, and of ``full``, in manifest order."""
    names = [e.name for e in manifest.supported_envs()] + [FULL_ENV]
    return _resolve(manifest, _selections(manifest, names))


def venv_digest(manifest: Manifest, env: layout.Venv, *, lock: str | None = None) -> str:
    """The digest of what ``env`` (its extras and groups) resolves to now; ``lock``: its hash.

    What :func:`signal4.envs.venv.status` and ``finish_sync`` compare and record.
    """
    wanted = {env.name: tuple(env.extras)}
    return _resolve(manifest, wanted, env.groups, lock=lock)[env.name].digest
