"""`ledgerdr info`: the restore points of each repository."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import click

from ..durable import newest_durable_digest, render_durable
from ..errors import ConfigError
from ..info import RepositoryInfo, repository_info
from ..stores import open_location
from .common import config_option, json_option, load, open_repository
from .output import emit_json


@click.command()
@click.argument("repository", required=False)
@config_option
@json_option
def info(repository: str | None, config_path: str, as_json: bool) -> None:
    """The restore points of every configured repository, or of REPOSITORY (a configured name, or a URL).

    Per repository: lineages and incarnations (promotions), windows (first/last block and time),
    snapshots, a replica's watermark, orphans, breaks, and the range `restore --until` / `--until-block`
    accept (restore refuses a point outside it, naming it); then the newest digest durable in two
    regions (as `status` shows it). Reads records only. Exits 0; 2 for an unknown
    repository name or a bad configuration; 3 when a repository cannot be read.
    """
    now = datetime.now(UTC)
    infos = _infos(repository, config_path, now)
    durable = newest_durable_digest([i.status for i in infos])
    if as_json:
        emit_json({"now": now.isoformat(), "repositories": [i.to_json() for i in infos],
                   "durable_digest": durable.to_json() if durable else None})
    else:
        click.echo("\n".join([*(i.render() for i in infos), render_durable(durable)]))


def _infos(repository: str | None, config_path: str, now: datetime) -> list[RepositoryInfo]:
    """A URL is read on its own (as a primary); otherwise the configured repositories, or the one named."""
    configured = load(config_path) if Path(config_path).is_file() else None
    names = [r.name for r in configured.repositories] if configured else []
    if repository is not None and repository not in names:
        if "://" not in repository and "/" not in repository and not Path(repository).exists():
            raise ConfigError(f"no repository named {repository!r}" + (f" (configured: {', '.join(names)})"
                                                                       if names else f" and no {config_path}"),
                              hint="pass a configured name, a directory or an s3:// URL")
        return [repository_info(repository, "unknown", open_location(repository), now=now, primary=True)]
    if configured is None:
        raise ConfigError(f"no configuration at {config_path}: pass a repository URL or --config")
    return [repository_info(repo.name, repo.region, open_repository(repo), now=now, primary=(i == 0))
            for i, repo in enumerate(configured.repositories) if repository in (None, repo.name)]
