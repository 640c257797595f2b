"""Node configuration: one INI file per node, parsed into validated frozen dataclasses.

This module owns the on-disk configuration format (see ``conf/node1.ini``) and
every check made on it. A node is started with the path of its own file; every
member's file lists all members (the same ``[member.N]`` sections), so two nodes
can compare :meth:`NodeConfig.cluster_fingerprint` to detect a disagreement.

Sections::

    [node]       id, data_dir                       required
    [member.N]   client, peer, election, watch      at least one, all keys required
    [limits]     max_data_bytes, max_path_bytes, max_inflight_per_client,
                 max_clients, max_batch             optional (defaults: see Limits)
    [timing]     heartbeat_ms, election_timeout_ms,
                 client_session_timeout_ms          optional (defaults: see Timing)
    [storage]    fsync, wal_segment_bytes           optional (defaults: see Storage)
    [log]        level                              optional (default: info)

Every problem raises :class:`ConfigError` with a one-line message naming the
file, the section and the key. Nothing is read but the INI files themselves;
nothing is created (``data_dir`` is only resolved, not checked or made).
"""

from __future__ import annotations

import configparser
import difflib
import hashlib
import ipaddress
import itertools
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from zkactors.errors import ZkactorsError
from zkactors.protocol import MAX_PATH_BYTES_LIMIT

__all__ = [
    "LOG_LEVELS",
    "MAX_NODE_ID",
    "ConfigError",
    "Limits",
    "Member",
    "NodeConfig",
    "Storage",
    "Timing",
    "load_ensemble",
    "load_node_config",
]

#: Node ids are 1..MAX_NODE_ID (ZooKeeper's classic ``myid`` range, small
#: enough to be packed into the high byte of a session id).
MAX_NODE_ID = 255
LOG_LEVELS = ("debug", "info", "warning", "error")
DEFAULT_LOG_LEVEL = "info"

_TRUE = frozenset({"true", "yes", "on", "1"})
_FALSE = frozenset({"false", "no", "off", "0"})


class ConfigError(ZkactorsError):
    """A configuration file is missing, unreadable, malformed or invalid.

    ``str()`` is one line: ``"<file>: [<section>] <key>: <problem>"`` (section
    and key left out when the problem is not about one).
    """

    def __init__(
        self,
        file: str,
        problem: str,
        *,
        section: str | None = None,
        key: str | None = None,
    ) -> None:
        self.file = file
        self.section = section
        self.key = key
        self.problem = problem
        where = file
        if section is not None:
            where += f": [{section}]"
            if key is not None:
                where += f" {key}"
        super().__init__(" ".join(f"{where}: {problem}".split("\n")))


@dataclass(frozen=True, slots=True)
class Member:
    """One ensemble member and the endpoints others connect to."""

    id: int
    client: str  # client requests (ROUTER)
    peer: str  # log replication and votes between log actors (ROUTER)
    election: str  # heartbeats and pre-votes between election actors (ROUTER)
    watch: str  # watch notifications (PUB)


@dataclass(frozen=True, slots=True)
class Limits:
    max_data_bytes: int = 1024 * 1024
    max_path_bytes: int = 4096
    max_inflight_per_client: int = 1024
    max_clients: int = 4096
    max_batch: int = 1024


@dataclass(frozen=True, slots=True)
class Timing:
    heartbeat_ms: int = 50
    election_timeout_ms: int = 300
    client_session_timeout_ms: int = 10_000


@dataclass(frozen=True, slots=True)
class Storage:
    fsync: bool = True
    wal_segment_bytes: int = 64 * 1024 * 1024
    #: Snapshot the state machine every this many applied entries (0: never), then
    #: drop the log before it but for ``log_retain_entries`` (so a follower that
    #: is only a little behind catches up from the log, not a whole snapshot).
    snapshot_every: int = 100_000
    log_retain_entries: int = 10_000


@dataclass(frozen=True, slots=True)
class Watch:
    """The watch actor's event history (for clients resuming after a gap) and the
    heartbeat that tells clients how far this node has applied."""

    history_events: int = 100_000
    history_bytes: int = 16 * 1024 * 1024
    heartbeat_ms: int = 100
    #: The beat with no events and no new subscribers for a while. Clients treat
    #: 3 s without one as a dead node, hence the cap.
    idle_heartbeat_ms: int = 1000
    #: Messages queued for one subscriber before the node drops its next ones
    #: (the subscriber then catches up by resume): node memory per slow
    #: subscriber is bounded by this times the message size.
    subscriber_queue: int = 100_000


@dataclass(frozen=True, slots=True)
class SessionLimits:
    """The session timeouts a client may ask for (milliseconds): outside these
    bounds its session is refused with BAD_ARGUMENTS."""

    min_timeout_ms: int = 1_000
    max_timeout_ms: int = 60_000


@dataclass(frozen=True, slots=True)
class Admin:
    """The node's admin HTTP endpoint, serving ``/metrics`` and ``/health``."""

    #: ``HOST:PORT`` to listen on, or "" for none (the default).
    http: str = ""

    @property
    def http_address(self) -> tuple[str, int] | None:
        if not self.http:
            return None
        host, _, port = self.http.rpartition(":")
        return host, int(port)


@dataclass(frozen=True, slots=True)
class NodeConfig:
    """Everything one node reads from its INI file, validated."""

    path: str  # the ini file it came from (absolute)
    node_id: int
    data_dir: str  # absolute
    members: tuple[Member, ...]  # sorted by id
    limits: Limits
    timing: Timing
    storage: Storage
    log_level: str
    watch: Watch = Watch()
    admin: Admin = Admin()
    session: SessionLimits = SessionLimits()

    @property
    def me(self) -> Member:
        """This node's own member entry."""
        return self.member(self.node_id)

    def member(self, node_id: int) -> Member:
        """The member with ``node_id``; ``KeyError`` if there is none."""
        for m in self.members:
            if m.id == node_id:
                return m
        raise KeyError(f"no member {node_id} in {self.path}")

    def cluster_fingerprint(self) -> str:
        """A stable hash (sha256 hex) of the member list.

        Equal on two nodes exactly when their ``[member.N]`` sections agree
        (after endpoint normalisation); nothing else in the file counts.
        """
        canonical = json.dumps(
            [[m.id, m.client, m.peer, m.election, m.watch] for m in self.members],
            separators=(",", ":"),
        )
        return hashlib.sha256(canonical.encode("ascii")).hexdigest()


# --- schema ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Int:
    lo: int
    hi: int


class _Bool:
    pass


class _Text:
    pass


@dataclass(frozen=True, slots=True)
class _Choice:
    options: tuple[str, ...]


_Kind = _Int | _Bool | _Choice | _Text

_POSITIVE_SIZE = _Int(1, 1 << 40)

#: The optional sections: key -> kind. Defaults come from the dataclasses.
_OPTIONAL: dict[str, dict[str, _Kind]] = {
    "limits": {
        "max_data_bytes": _Int(1, 1 << 30),
        "max_path_bytes": _Int(1, MAX_PATH_BYTES_LIMIT),
        "max_inflight_per_client": _Int(1, 1_000_000),
        "max_clients": _Int(1, 1_000_000),
        "max_batch": _Int(1, 1_000_000),
    },
    "timing": {
        "heartbeat_ms": _Int(1, 60_000),
        "election_timeout_ms": _Int(1, 600_000),
        "client_session_timeout_ms": _Int(1, 24 * 3600 * 1000),
    },
    "storage": {
        "fsync": _Bool(),
        "wal_segment_bytes": _POSITIVE_SIZE,
        "snapshot_every": _Int(0, 1 << 40),
        "log_retain_entries": _Int(0, 1 << 40),
    },
    "log": {
        "level": _Choice(LOG_LEVELS),
    },
    "watch": {
        "history_events": _Int(0, 100_000_000),
        "history_bytes": _Int(0, 1 << 40),
        "heartbeat_ms": _Int(1, 60_000),
        "idle_heartbeat_ms": _Int(1, 2_000),
        "subscriber_queue": _Int(1, 10_000_000),
    },
    "admin": {
        "http": _Text(),
    },
    "session": {
        "min_timeout_ms": _Int(1, 24 * 3600 * 1000),
        "max_timeout_ms": _Int(1, 24 * 3600 * 1000),
    },
}
_NODE_KEYS = ("id", "data_dir")
_MEMBER_KEYS = ("client", "peer", "election", "watch")
_MEMBER_PREFIX = "member."

_ENDPOINT = re.compile(r"tcp://(?P<host>[^:/\s]*):(?P<port>[^:/\s]*)")
_DOTTED = re.compile(r"[0-9.]+")
_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")


def _show(value: str) -> str:
    """``repr`` of a raw value, shortened so the message stays readable."""
    return repr(value if len(value) <= 60 else value[:57] + "...")


def _hint(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1)
    return f" (did you mean {close[0]}?)" if close else ""


# --- parsing ---------------------------------------------------------------


class _Reader:
    """Reads typed values out of a parsed file, raising ConfigError on the way."""

    def __init__(self, file: str, parser: configparser.ConfigParser) -> None:
        self.file = file
        self.parser = parser

    def error(self, section: str | None, key: str | None, problem: str) -> ConfigError:
        return ConfigError(self.file, problem, section=section, key=key)

    def keys(
        self, section: str, known: list[str], required: tuple[str, ...] = ()
    ) -> None:
        """Reject unknown keys in ``section``; require ``required`` ones."""
        for key in self.parser[section]:
            if key not in known:
                raise self.error(section, key, "unknown key" + _hint(key, known))
        for key in required:
            if key not in self.parser[section]:
                raise self.error(section, key, "missing required key")

    def raw(self, section: str, key: str) -> str | None:
        if not self.parser.has_section(section):
            return None
        return self.parser[section].get(key)

    def integer(self, section: str, key: str, raw: str, lo: int, hi: int) -> int:
        text = raw.strip()
        if not re.fullmatch(r"[+-]?[0-9]+", text):
            wanted = "a positive integer" if lo == 1 else "an integer"
            raise self.error(section, key, f"expected {wanted}, got {_show(raw)}")
        value = int(text)
        if not lo <= value <= hi:
            raise self.error(
                section, key, f"expected an integer in {lo}..{hi}, got {_show(raw)}"
            )
        return value

    def value(self, section: str, key: str, kind: _Kind, raw: str) -> Any:
        if isinstance(kind, _Int):
            return self.integer(section, key, raw, kind.lo, kind.hi)
        if isinstance(kind, _Text):
            return raw.strip()
        word = raw.strip().lower()
        if isinstance(kind, _Bool):
            if word in _TRUE:
                return True
            if word in _FALSE:
                return False
            raise self.error(
                section, key, f"expected true/false/yes/no/on/off/1/0, got {_show(raw)}"
            )
        if word not in kind.options:
            raise self.error(
                section,
                key,
                f"expected one of {'|'.join(kind.options)}, got {_show(raw)}",
            )
        return word

    def optional_section(
        self, section: str, defaults: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Values of an optional section, each key falling back to ``defaults``."""
        schema = _OPTIONAL[section]
        if self.parser.has_section(section):
            self.keys(section, list(schema))
        values = dict(defaults)
        for key, kind in schema.items():
            raw = self.raw(section, key)
            if raw is not None:
                values[key] = self.value(section, key, kind, raw)
        return values

    def endpoint(self, section: str, key: str, raw: str) -> str:
        """Validate ``tcp://HOST:PORT``; return it normalised (host lower-cased)."""
        text = raw.strip()
        m = _ENDPOINT.fullmatch(text)
        if m is None:
            raise self.error(
                section, key, f"expected tcp://HOST:PORT, got {_show(raw)}"
            )
        host, port = m["host"], m["port"]
        if host in ("*", "0.0.0.0"):
            raise self.error(
                section,
                key,
                f"host {host!r} is not allowed: other members connect to this endpoint",
            )
        if _DOTTED.fullmatch(host):
            try:
                ipaddress.IPv4Address(host)
            except ValueError:
                raise self.error(
                    section, key, f"{host!r} is not a valid IPv4 address"
                ) from None
        elif not (
            len(host) <= 253 and all(_LABEL.fullmatch(p) for p in host.split("."))
        ):
            raise self.error(
                section, key, f"expected an IPv4 address or hostname, got {host!r}"
            )
        if not port.isascii() or not port.isdigit() or not 1 <= int(port) <= 65535:
            raise self.error(section, key, f"expected a port in 1..65535, got {port!r}")
        return f"tcp://{host.lower()}:{int(port)}"


def _read_ini(file: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(
        inline_comment_prefixes=(";", "#"), interpolation=None
    )
    try:
        with open(file, encoding="utf-8") as f:
            parser.read_file(f, source=file)
    except OSError as e:
        raise ConfigError(file, f"cannot read config file: {e.strerror or e}") from None
    except UnicodeDecodeError as e:
        raise ConfigError(file, f"not UTF-8 text (byte {e.start})") from None
    except configparser.DuplicateSectionError as e:
        raise ConfigError(
            file, f"duplicate section (line {e.lineno})", section=e.section
        ) from None
    except configparser.DuplicateOptionError as e:
        raise ConfigError(
            file, f"duplicate key (line {e.lineno})", section=e.section, key=e.option
        ) from None
    except configparser.MissingSectionHeaderError as e:
        raise ConfigError(
            file, f"line {e.lineno}: key outside any section: {e.line.strip()!r}"
        ) from None
    except configparser.ParsingError as e:
        lineno, line = e.errors[0]  # ``line`` is already a repr
        raise ConfigError(file, f"line {lineno}: syntax error: {line}") from None
    except configparser.Error as e:
        raise ConfigError(file, f"syntax error: {e}") from None
    return parser


def _member_id(r: _Reader, section: str) -> int:
    suffix = section[len(_MEMBER_PREFIX) :]
    if not suffix.isascii() or not suffix.isdigit():
        raise r.error(
            section, None, f"member section suffix must be an integer, got {suffix!r}"
        )
    node_id = int(suffix)
    if str(node_id) != suffix:
        raise r.error(
            section, None, f"write the member id without leading zeros ({node_id})"
        )
    if not 1 <= node_id <= MAX_NODE_ID:
        raise r.error(
            section, None, f"member id must be in 1..{MAX_NODE_ID}, got {node_id}"
        )
    return node_id


def _members(r: _Reader, sections: list[str]) -> tuple[Member, ...]:
    members: list[Member] = []
    used: dict[str, str] = {}  # normalised endpoint -> "[member.N] key"
    for section in sections:
        node_id = _member_id(r, section)
        r.keys(section, list(_MEMBER_KEYS), required=_MEMBER_KEYS)
        endpoints: dict[str, str] = {}
        for key in _MEMBER_KEYS:
            ep = r.endpoint(section, key, r.parser[section][key])
            if ep in used:
                raise r.error(
                    section, key, f"endpoint {ep} is already used by {used[ep]}"
                )
            used[ep] = f"[{section}] {key}"
            endpoints[key] = ep
        members.append(Member(id=node_id, **endpoints))
    return tuple(sorted(members, key=lambda m: m.id))


def _http_address(r: _Reader, raw: str) -> str:
    """``[admin] http``: ``HOST:PORT`` (``http://`` allowed), normalised."""
    text = raw.removeprefix("http://")
    host, sep, port = text.rpartition(":")
    if not sep or not host or "/" in text or any(c.isspace() for c in text) \
            or not port.isascii() or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise r.error("admin", "http", "expected HOST:PORT such as 127.0.0.1:8081 "
                      f"(or nothing, for no admin endpoint), got {_show(raw)}")
    return f"{host.lower()}:{int(port)}"


def load_node_config(path: str | os.PathLike[str]) -> NodeConfig:
    """Read, validate and return the configuration in the INI file at ``path``.

    Error messages name the file as given; ``NodeConfig.path`` is absolute.
    """
    file = os.fspath(path)
    parser = _read_ini(file)
    r = _Reader(file, parser)

    if parser.defaults():
        raise r.error(parser.default_section, None, "unknown section")
    member_sections = []
    known = ["node", *_OPTIONAL]
    for section in parser.sections():
        if section.startswith(_MEMBER_PREFIX):
            member_sections.append(section)
        elif section not in known:
            raise r.error(section, None, "unknown section" + _hint(section, known))
    if not parser.has_section("node"):
        raise r.error("node", None, "missing required section")
    if not member_sections:
        raise r.error("member.N", None, "at least one member section is required")

    members = _members(r, member_sections)

    r.keys("node", list(_NODE_KEYS), required=_NODE_KEYS)
    node_id = r.integer("node", "id", parser["node"]["id"], 1, MAX_NODE_ID)
    if node_id not in {m.id for m in members}:
        ids = ", ".join(str(m.id) for m in members)
        raise r.error(
            "node",
            "id",
            f"{node_id} is not one of the [member.N] sections (members: {ids})",
        )
    data_dir = parser["node"]["data_dir"].strip()
    if not data_dir:
        raise r.error("node", "data_dir", "must not be empty")
    abs_path = os.path.abspath(file)
    data_dir = os.path.abspath(os.path.join(os.path.dirname(abs_path), data_dir))

    def defaults(cls: type) -> dict[str, Any]:
        return {f.name: f.default for f in fields(cls)}

    limits = Limits(**r.optional_section("limits", defaults(Limits)))
    timing = Timing(**r.optional_section("timing", defaults(Timing)))
    if timing.heartbeat_ms >= timing.election_timeout_ms:
        raise r.error(
            "timing",
            "heartbeat_ms",
            f"must be less than election_timeout_ms "
            f"({timing.heartbeat_ms} >= {timing.election_timeout_ms})",
        )
    storage = Storage(**r.optional_section("storage", defaults(Storage)))
    log_level = r.optional_section("log", {"level": DEFAULT_LOG_LEVEL})["level"]
    watch = Watch(**r.optional_section("watch", defaults(Watch)))
    if watch.idle_heartbeat_ms < watch.heartbeat_ms:
        raise r.error(
            "watch",
            "idle_heartbeat_ms",
            f"must be at least heartbeat_ms "
            f"({watch.idle_heartbeat_ms} < {watch.heartbeat_ms})",
        )

    session = SessionLimits(**r.optional_section("session", defaults(SessionLimits)))
    if session.min_timeout_ms > session.max_timeout_ms:
        raise r.error("session", "min_timeout_ms", f"must not exceed max_timeout_ms "
                      f"({session.min_timeout_ms} > {session.max_timeout_ms})")
    admin = Admin(**r.optional_section("admin", defaults(Admin)))
    if admin.http:
        admin = Admin(http=_http_address(r, admin.http))

    return NodeConfig(
        path=abs_path,
        node_id=node_id,
        data_dir=data_dir,
        members=members,
        limits=limits,
        timing=timing,
        storage=storage,
        log_level=log_level,
        watch=watch,
        admin=admin,
        session=session,
    )


def load_ensemble(conf_dir: str | os.PathLike[str]) -> list[NodeConfig]:
    """Load every ``*.ini`` in ``conf_dir`` (not recursive), sorted by node id.

    ConfigError if the directory holds none, or two files claim the same id.
    Whether the files agree on the members is left to the caller
    (compare :meth:`NodeConfig.cluster_fingerprint`).
    """
    shown = os.fspath(conf_dir)
    directory = Path(shown)
    if not directory.is_dir():
        raise ConfigError(shown, "not a directory")
    files = sorted(directory.glob("*.ini"))
    if not files:
        raise ConfigError(shown, "no *.ini files in this directory")
    configs = sorted((load_node_config(f) for f in files), key=lambda c: c.node_id)
    for before, after in itertools.pairwise(configs):
        if before.node_id == after.node_id:
            raise ConfigError(
                after.path,
                f"{after.node_id} is also the id in {before.path}",
                section="node",
                key="id",
            )
    return configs
