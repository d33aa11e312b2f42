"""`ledgerdr info`: the restore points of each repository."""

from __future__ import annotations

from datetime import UTC, datetime

import click

from ..durable import newest_durable_digest, render_durable
from ..info import RepositoryInfo, repository_info
from .common import config_option, json_option, load, load_optional, open_repository, resolve_repository
from .output import emit_json


@click.command()
@click.argument("repository", required=False)
@config_option
@json_option
def info(repository: str | None, config_path: str | None, as_json: bool) -> None:
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


def _infos(repository: str | None, config_path: str | None, now: datetime) -> list[RepositoryInfo]:
    """A URL is read on its own (as a primary); otherwise the configured repositories, or the one named."""
    if repository is None:
        return [repository_info(repo.name, repo.region, open_repository(repo), now=now, primary=(i == 0))
                for i, repo in enumerate(load(config_path).repositories)]
    configured = load_optional(config_path)
    chosen = resolve_repository(repository, configured)
    primary = chosen.configured is None or (configured is not None and chosen.configured == configured.primary)
    return [repository_info(chosen.name, chosen.region, chosen.open(), now=now, primary=primary)]
