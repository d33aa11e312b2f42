"""`ledgerdr.toml`: read once, validated up front, every problem reported at once with its field.

Defaults work with no cloud at all: an embedded ledger and two directories standing in for two
regions. Every key is declared once in a schema (`SOURCE`, `BACKUP`, `REPOSITORY`, `SERVE`: type, default, doc)
that both validates a file (unknown keys and wrongly typed values refused, all problems reported at
once, naming key and value) and writes `ledgerdr init`'s commented `DEFAULT_CONFIG`, so the two cannot
drift. A table rather than pydantic or msgspec: ledgerdr keeps its install small, and TOML already
gives typed values, so the checks are a few lines.

String values may name environment variables (`${NAME}`, `${NAME:-default}`; `$$` is a literal `$`), so
secrets and per-host values stay out of the file; an unset variable is a configuration error naming it
and the key, and an expanded value is never quoted back in an error (it may be a secret).
"""

from __future__ import annotations

import json
import os
import re
import textwrap
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .journal.codecs import ExportFormat
from .repository import EXPORTS, WINDOWS
from .stores.file import META_DIR, unusable_root

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str | int | float, field_name: str = "duration") -> timedelta:
    if isinstance(text, (int, float)):
        return timedelta(seconds=float(text))
    match = _DURATION.match(str(text))
    if not match:
        raise ConfigError(f"{field_name}: {text!r} is not a duration (use e.g. 500ms, 30s, 15m, 1h, 7d)")
    return timedelta(seconds=float(match[1]) * _UNITS[match[2]])


@dataclass(frozen=True)
class SourceConfig:
    kind: str = "embedded"
    path: Path | None = None
    ledger: str = "ledger"
    region: str | None = None
    role_arn: str | None = None
    endpoint_url: str | None = None
    export_bucket_role_arn: str | None = None


@dataclass(frozen=True)
class RepositoryConfig:
    name: str
    url: str
    region: str = "local"
    options: dict[str, Any] = field(default_factory=dict)  # backend settings (role_arn, sse, lock_mode ...)
    require_object_lock: bool = False
    signing_key: str | None = None  # [signing] key: signs every record written here (signing.load_signer)


@dataclass(frozen=True)
class BackupConfig:
    interval: timedelta = timedelta(hours=1)
    settle: timedelta = timedelta(seconds=5)
    format: ExportFormat = ExportFormat.ION_BINARY
    retention_days: int = 30
    merge_due_windows: bool = False


@dataclass(frozen=True)
class SigningConfig:
    key: str | None = None  # a key file (absolute), env:NAME or kms:KEY
    trusted_keys: tuple[str, ...] = ()  # files (absolute) or inline public keys


@dataclass(frozen=True)
class Config:
    source: SourceConfig
    backup: BackupConfig
    repositories: tuple[RepositoryConfig, ...]
    path: Path | None = None
    warnings: tuple[str, ...] = ()
    signing: SigningConfig = SigningConfig()

    @property
    def primary(self) -> RepositoryConfig:
        return self.repositories[0]

    @property
    def replicas(self) -> tuple[RepositoryConfig, ...]:
        return self.repositories[1:]

    def repository(self, name: str) -> RepositoryConfig:
        for repo in self.repositories:
            if repo.name == name:
                return repo
        raise ConfigError(f"no repository named {name!r} (configured: {', '.join(r.name for r in self.repositories)})")


def load_config(path: str | Path, environ: Mapping[str, str] | None = None) -> Config:
    """The validated configuration of the file at `path`. Raises ConfigError (every problem at once)."""
    path = Path(path)
    return parse_config(_read_toml(path), base=path.parent, path=path, environ=environ)


def load_serve_settings(path: str | Path, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The `[serve]` table of the file at `path`, validated against `SERVE`, its references expanded; only
    the keys the file sets. The other tables are not read: a file holding only `[serve]` is enough, and a
    variable that only `backup` needs need not be set where `serve` runs. Raises ConfigError."""
    path = Path(path)
    problems: list[str] = []
    table = _expanded("serve", _read_toml(path).get("serve", {}), os.environ if environ is None else environ,
                      problems)
    values = _section("serve", table, SERVE, problems) if not problems else {}
    _refuse(problems, path)
    return {key: value for key, value in values.items() if value is not None}


def _read_toml(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise ConfigError(f"config file {path} does not exist", hint="run `ledgerdr init` to write one")
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None


# --- ${NAME} references: secrets and per-host values from the environment -----------------------------------

# `$$`, `${NAME}`, `${NAME:-default}`, or a `${` that is none of these (refused rather than kept literally).
_REFERENCE = re.compile(r"\$(?:(\$)|\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}|(\{))")


class FromEnvironment(str):
    """A string value that came from expanding references: errors quote `template` (as the file spells
    it), never the value, which may be a secret."""

    template: str

    def __new__(cls, value: str, template: str) -> FromEnvironment:
        made = super().__new__(cls, value)
        made.template = template
        return made

    def __reduce__(self) -> tuple[Any, ...]:  # copy and pickle keep the template
        return (FromEnvironment, (str(self), self.template))


def _plain(value: Any) -> Any:
    """A checked value as the rest of ledgerdr gets it: plain strings (the template only served errors)."""
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return str(value) if isinstance(value, FromEnvironment) else value


def expand(where: str, text: str, environ: Mapping[str, str], problems: list[str]) -> str:
    """`text` with its references replaced from `environ`; each unset variable (without a default) and each
    malformed `${` is a problem naming `where` and the variable, and `text` is returned as it was."""
    if "$" not in text:
        return text
    missing: list[str] = []

    def one(match: re.Match[str]) -> str:
        dollar, name, default, malformed = match.groups()
        if dollar:
            return "$"
        if malformed:
            missing.append(f"{where}: a malformed reference in {_toml(text)} (use ${{NAME}}, ${{NAME:-default}}, "
                           "or $$ for a literal $)")
            return ""
        value = environ.get(name) or None  # as a shell's `:-`: set but empty counts as unset
        if value is None and default is None:
            missing.append(f"{where}: environment variable {name} is not set (it is referenced as ${{{name}}}; "
                           f"set it, or give a default: ${{{name}:-…}})")
            return ""
        return value if value is not None else default

    expanded = _REFERENCE.sub(one, text)
    problems.extend(missing)
    return text if missing else FromEnvironment(expanded, text)


def _expanded(where: str, value: Any, environ: Mapping[str, str], problems: list[str]) -> Any:
    """Every string inside `value` (tables and lists too) expanded; keys are left as written."""
    if isinstance(value, str):
        return expand(where, value, environ, problems)
    if isinstance(value, dict):
        return {k: _expanded(f"{where}.{k}", v, environ, problems) for k, v in value.items()}
    if isinstance(value, list):
        return [_expanded(f"{where}[{i}]", v, environ, problems) for i, v in enumerate(value)]
    return value


# --- the schema: one table that validates every key and writes `ledgerdr init`'s commented defaults --------


@dataclass(frozen=True)
class Setting:
    """One configuration key. `default` None: optional, written into the defaults commented out (`example`).
    `kind` is how the TOML value is checked: str, bool, int (≥ `minimum`), duration, format, or one of
    `choices`. A TOML value of another type is refused, never coerced (`"no"` is not false)."""

    key: str
    kind: str
    doc: str
    default: Any = None
    example: Any = None
    choices: tuple[str, ...] = ()
    minimum: int | None = None


SOURCE = (
    Setting("kind", "choice", '"embedded": a ledger file on this machine (created if absent). "qldb": Amazon QLDB '
            "or any QLDB-compatible endpoint (then ledger, region and role_arn are required).", "embedded",
            choices=("embedded", "qldb")),
    Setting("path", "str", "embedded: the ledger file, relative to this config file.", "ledger.db"),
    Setting("ledger", "str", "The ledger's name.", "ledger"),
    Setting("region", "str", "qldb: the ledger's region.", example="us-east-1"),
    Setting("role_arn", "str", "qldb: the role QLDB assumes to write exports into the primary repository.",
            example="arn:aws:iam::111122223333:role/ledgerdr-export"),
    Setting("endpoint_url", "str", "qldb: a QLDB-compatible endpoint instead of AWS's.",
            example="http://127.0.0.1:8443"),
)
BACKUP = (
    Setting("interval", "duration", "The export interval is the RPO knob: at worst this much (plus `settle`) is "
            "not yet exported by scheduled runs; `backup --once` exports everything up to now.", "1h"),
    Setting("settle", "duration", "Wait this long after a window ends before exporting it, so that late commits "
            "land in it.", "5s"),
    Setting("format", "format", "ion_binary keeps every Ion type and is a byte copy of the embedded journal; json "
            "is lossy.", "ion_binary"),
    Setting("retention_days", "int", "Objects are locked (write-once) for this long; never shorter than a bucket's "
            "Object Lock period.", 30, minimum=0),
    Setting("merge_due_windows", "bool", "Several due intervals become one bigger window instead of one window "
            "each.", False),
)
REPOSITORY = (
    Setting("url", "str", "A directory (empty, or a ledgerdr repository), file:///dir, or s3://bucket/prefix."),
    Setting("region", "str", "A name for where it is (for s3: the bucket's region).", "local"),
    Setting("require_object_lock", "bool", "Refuse to write unless the storage enforces retention itself.", False),
    Setting("role_arn", "str", "s3: a role to assume for this repository (another account).",
            example="arn:aws:iam::444455556666:role/ledgerdr-replica"),
    Setting("endpoint_url", "str", "s3: an S3-compatible endpoint.", example="http://127.0.0.1:9000"),
    Setting("lock_mode", "str", "s3: COMPLIANCE (default) or GOVERNANCE Object Lock on every object.",
            example="COMPLIANCE"),
    Setting("sse", "str", "s3: server-side encryption, AES256 or aws:kms.", example="aws:kms"),
    Setting("kms_key_id", "str", "s3: the KMS key for sse = aws:kms.", example="alias/ledgerdr"),
)
SERVE = (
    Setting("data", "str", "The directory of ledgers (DIR/<name>.db), relative to this config file.",
            example="ledgers"),
    Setting("host", "str", "The address to listen on (127.0.0.1: this machine only).", example="127.0.0.1"),
    Setting("port", "int", "The TCP port (0: any free port, printed).", example=8443),
    Setting("access_keys", "strlist", 'The keys clients sign with (SigV4), each "KEY_ID:SECRET"; keep the '
            "secret in the environment.", example=["app:${LEDGERDR_APP_SECRET}"]),
    Setting("tls_cert", "str", "A PEM certificate: serve HTTPS.", example="cert.pem"),
    Setting("tls_key", "str", "The PEM private key for tls_cert.", example="key.pem"),
    Setting("durability", "choice", "full fsyncs every commit before acknowledging it; normal does not.",
            example="full", choices=("full", "normal")),
    Setting("max_sessions", "int", "Open sessions allowed at once.", example=256, minimum=1),
)
SIGNING = (
    Setting("key", "str", "Sign every record ledgerdr writes (window records, watermarks, snapshot manifests, "
            "incarnations, prune records) with this Ed25519 key: a file (PEM, as `openssl genpkey -algorithm "
            "ed25519` writes, relative to this config file), env:NAME (an environment variable holding it), or "
            "kms:KEY (an AWS KMS key id, alias or ARN of spec ECC_NIST_EDWARDS25519 or ECC_NIST_P256).",
            example="signing.pem"),
    Setting("trusted_keys", "strlist", "Public keys (files, or base64/hex inline) whose signatures `verify` and "
            "`restore` accept; once set, both refuse unsigned records and records signed by any other key. Keep "
            "a rotated-out key here while records it signed remain.", example=["signing.pub"]),
)
_STORE_OPTIONS = ("role_arn", "endpoint_url", "lock_mode", "sse", "kms_key_id")  # passed to the store backend
_DEFAULT_REPOSITORIES = {"primary": {"url": "repo-primary", "region": "local-primary"},
                         "secondary": {"url": "repo-secondary", "region": "local-secondary"}}
# A directory holding any of these is a ledgerdr repository (or a raw QLDB export copied into a folder, which
# verify and restore read): a configured repository may use it. Any other non-empty directory is refused.
_REPOSITORY_MARKERS = (WINDOWS.split("/", 1)[0], EXPORTS.rstrip("/"), META_DIR)


def _typed(where: str, setting: Setting, value: Any, problems: list[str]) -> Any:
    """`value` checked against `setting` (a duration parsed, a format parsed); None, with a problem, if not."""
    kind = setting.kind
    ok = {"str": isinstance(value, str), "choice": value in setting.choices,
          "bool": type(value) is bool, "int": type(value) is int and value >= (setting.minimum or 0),
          "strlist": isinstance(value, list) and all(isinstance(v, str) for v in value)}
    if kind in ok:
        if ok[kind]:
            return _plain(value)
        wanted = {"str": "a string", "bool": "true or false (unquoted)", "choice": " or ".join(map(_toml, setting.choices)),
                  "int": f"a whole number ≥ {setting.minimum or 0}", "strlist": "a list of strings"}[kind]
        problems.append(f"{where}: {_shown(value)} must be {wanted}")
        return None
    try:
        if kind == "duration":
            if type(value) is bool or not isinstance(value, (str, int, float)):
                raise ConfigError(f"{where}: {_shown(value)} is not a duration (use e.g. 500ms, 30s, 15m, 1h, 7d)")
            return parse_duration(value, where)
        return ExportFormat.parse(value) if isinstance(value, str) else ExportFormat.parse(repr(value))
    except ConfigError as exc:
        if isinstance(value, FromEnvironment):  # the parser's message quotes the expanded value
            problems.append(f"{where}: {_shown(value)} is not a valid {kind}")
        else:
            problems.append(str(exc) if str(exc).startswith(where) else f"{where}: {exc}")
        return None


def _section(where: str, raw: Any, schema: tuple[Setting, ...], problems: list[str]) -> dict[str, Any]:
    """Every key of `raw` checked against `schema` (unknown keys refused); defaults filled in."""
    if not isinstance(raw, dict):
        problems.append(f"[{where}]: must be a table, not {_shown(raw)}")
        return {s.key: s.default for s in schema}
    known = {s.key: s for s in schema}
    problems.extend(f"{where}.{k}: unknown setting (known: {', '.join(known)})" for k in raw if k not in known)
    values = {}
    for setting in schema:
        if setting.key in raw:
            values[setting.key] = _typed(f"{where}.{setting.key}", setting, raw[setting.key], problems)
        else:
            values[setting.key] = _typed(where, setting, setting.default, []) if setting.default is not None else None
    return values


def _toml(value: Any) -> str:
    return "true" if value is True else "false" if value is False else json.dumps(value)


def _shown(value: Any) -> str:
    """A value as the TOML file spells it (`true`, `"no"`), so an error message quotes the file (an expanded
    value by its references, never what they expanded to)."""
    if isinstance(value, FromEnvironment):
        return f"{_toml(str(value.template))} (after expanding its references)"
    if isinstance(value, list):
        return "[" + ", ".join(map(_shown, value)) + "]"
    try:
        return _toml(value)
    except TypeError:  # a TOML date or time
        return str(value)


def _render_settings(schema: tuple[Setting, ...], values: dict[str, Any] | None = None) -> list[str]:
    lines = []
    for setting in schema:
        lines += [f"# {line}" for line in textwrap.wrap(setting.doc, 108)]
        value = (values or {}).get(setting.key, setting.default)
        lines.append(f"# {setting.key} = {_toml(setting.example)}" if value is None else
                     f"{setting.key} = {_toml(value)}")
    return lines


def render_defaults() -> str:
    """`ledgerdr init`'s file: every setting of the schema, with its doc; optional ones commented out."""
    lines = ["# ledgerdr configuration. Every duration takes a number and a unit: 500ms, 30s, 15m, 1h, 7d.",
             "# A string may name environment variables: ${NAME}, or ${NAME:-default} when it may be unset; $$ is a "
             "literal $.", "", "[source]", *_render_settings(SOURCE), "", "[backup]", *_render_settings(BACKUP), "",
             "# Signed records (docs/format.md): optional.", "[signing]", *_render_settings(SIGNING), "",
             "# Repositories: the first is the primary (exports are written there); the others are replicas."]
    for i, (name, values) in enumerate(_DEFAULT_REPOSITORIES.items()):  # the first documents every setting
        lines += ["", f"[repositories.{name}]", *(_render_settings(REPOSITORY, values) if i == 0 else
                                                   [f"{k} = {_toml(v)}" for k, v in values.items()])]
    lines += ["", "# `ledgerdr serve`'s defaults (its command-line options win).", "[serve]", *_render_settings(SERVE)]
    return "\n".join(lines) + "\n"


def parse_config(raw: dict[str, Any], *, base: Path = Path("."), path: Path | None = None,
                 environ: Mapping[str, str] | None = None) -> Config:
    """Validate everything, collect every problem, raise one ConfigError listing them all. References in
    `[source]`, `[backup]` and `[repositories]` are expanded from `environ` (default: the process's); those
    in `[serve]` only by `load_serve_settings`, for `serve`, whose secrets other commands need not have."""
    problems: list[str] = []
    warnings: list[str] = []
    environ = os.environ if environ is None else environ
    raw = {k: _expanded(k, v, environ, problems) if k in ("source", "backup", "repositories") else v
           for k, v in raw.items()}
    _refuse(problems, path)  # an unresolved value would only add confusing problems of its own (a "url" of "")
    raw_source = raw.get("source", {})
    source = _source(_section("source", raw_source, SOURCE, problems), base, problems)
    if source.kind == "qldb" and isinstance(raw_source, dict) and "ledger" not in raw_source:
        problems.append("source.ledger: required when source.kind = 'qldb'")
    backup = _backup(_section("backup", raw.get("backup", {}), BACKUP, problems), problems, warnings)
    signing = _signing(_section("signing", raw.get("signing", {}), SIGNING, problems), base)
    repositories = _repositories(raw.get("repositories", {}), base, problems, signing.key)
    if "serve" in raw:  # its keys and types; its values are read (and expanded) by `serve` alone
        _section("serve", _unreferenced(raw["serve"]), SERVE, problems)
    for section in sorted(set(raw) - {"source", "backup", "signing", "repositories", "serve"}):
        problems.append(f"[{section}]: unknown section (known: source, backup, signing, repositories, serve)")
    _refuse(problems, path)
    return Config(source, backup, repositories, path, tuple(warnings), signing)


def _refuse(problems: list[str], path: Path | None) -> None:
    """One ConfigError listing every problem, if there is any."""
    if problems:
        raise ConfigError("invalid configuration" + (f" in {path}" if path else "") + ":\n  - "
                          + "\n  - ".join(problems))


def _unreferenced(table: Any) -> Any:
    """`table` less the known keys whose values hold a reference: every other key and type can be checked
    where those variables need not be set (`serve` checks the rest once it has expanded them)."""
    if not isinstance(table, dict):
        return table
    known = {s.key for s in SERVE}
    return {k: v for k, v in table.items() if k not in known or "${" not in str(v)}


def _source(values: dict[str, Any], base: Path, problems: list[str]) -> SourceConfig:
    if values["kind"] == "qldb":
        problems.extend(f"source.{key}: required when source.kind = 'qldb'"
                        for key in ("region", "role_arn") if not values[key])
    path = base / values["path"] if values["kind"] == "embedded" and values["path"] else None
    return SourceConfig(kind=values["kind"] or "embedded", path=path, ledger=values["ledger"] or "ledger",
                        region=values["region"], role_arn=values["role_arn"], endpoint_url=values["endpoint_url"])


def _backup(values: dict[str, Any], problems: list[str], warnings: list[str]) -> BackupConfig:
    interval = values["interval"]
    if interval is not None and (interval.total_seconds() < 1 or interval.total_seconds() % 1):
        problems.append(f"backup.interval: {interval} must be a whole number of seconds, at least 1s")
    if values["format"] is ExportFormat.JSON:
        warnings.append("backup.format = json loses Ion types: revision data hashes cannot all be re-checked and "
                        "restored values may differ from the originals; prefer ion_binary")
    return BackupConfig(**{k: v for k, v in values.items() if v is not None})


def _signing(values: dict[str, Any], base: Path) -> SigningConfig:
    """Key files relative to the config file; `env:`/`kms:` keys and inline public keys as given."""
    key = values["key"]
    if key and not key.startswith(("env:", "kms:")):
        key = str((base / key).resolve())
    trusted = tuple(str((base / t).resolve()) if (base / t).is_file() else t for t in values["trusted_keys"] or ())
    return SigningConfig(key, trusted)


def _repositories(raw: Any, base: Path, problems: list[str], signing_key: str | None = None
                  ) -> tuple[RepositoryConfig, ...]:
    if not raw or not isinstance(raw, dict):
        problems.append("[repositories]: at least one repository (the primary) is required")
        return ()
    repos = []
    for name, settings in raw.items():
        where = f"repositories.{name}"
        if not re.fullmatch(r"[A-Za-z0-9_-]+", name):
            problems.append(f"{where}: names may use letters, digits, '-' and '_' only")
        values = _section(where, settings, REPOSITORY, problems)
        url = values["url"]
        if not url:
            if isinstance(settings, dict) and "url" not in settings:
                problems.append(f"{where}.url: required")
            continue
        url = _absolute(url, base)
        refusal = _repository_url_refusal(url)
        if refusal:
            problems.append(f"{where}.url: {_shown(settings['url'])}: {refusal}")
        options = {k: values[k] for k in _STORE_OPTIONS if values[k] is not None}
        repos.append(RepositoryConfig(name, url, values["region"], options, values["require_object_lock"], signing_key))
    return tuple(repos)


def _absolute(url: str, base: Path) -> str:
    if "://" not in url:
        return str((base / url).resolve())
    if url.startswith("file://"):
        return "file://" + str((base / url[len("file://"):]).resolve())
    return url


def _repository_url_refusal(url: str) -> str | None:
    """Why a directory cannot be this repository (issue 16 item 12), or None; S3 URLs are checked by `check`.
    The root of the file system, a file and an uncreatable path are refused, and so is a directory that
    already holds something other than a ledgerdr repository (backing up into a home directory would
    scatter exports/ and _ledgerdr/ among the user's files)."""
    if url.startswith("s3://"):
        return None
    root = Path(url.removeprefix("file://"))
    refusal = unusable_root(root, create=True)
    if refusal or not root.is_dir():
        return refusal
    try:
        with os.scandir(root) as entries:
            names = [e.name for e in entries]
    except OSError as exc:
        return f"cannot be read: {exc.strerror or exc}"
    if not names or any(n in _REPOSITORY_MARKERS or n.endswith(".started.manifest") for n in names):
        return None
    return (f"{root} is not empty and is not a ledgerdr repository (it holds {', '.join(sorted(names)[:3])}"
            f"{', …' if len(names) > 3 else ''}; a repository holds {' or '.join(m + '/' for m in _REPOSITORY_MARKERS[:2])}): "
            "use an empty or new directory")


DEFAULT_CONFIG = render_defaults()
