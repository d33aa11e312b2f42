"""`ledgerdr aws template|package|check`: deploy ledgerdr on AWS (see docs/aws.md)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..errors import ConfigError
from .common import config_option, load_optional
from .output import emit_json


@click.group()
def aws() -> None:
    """Deploy on AWS: CloudFormation templates, the Lambda zip, a preflight of a deployed stack."""


@aws.command()
@click.option("--role", "role_name", type=click.Choice(["primary", "replica"]), required=True,
              help="primary: the ledger's region (backups); replica: the recovery region (deploy it first).")
@click.option("--param", "params", multiple=True, metavar="K=V",
              help="Set a template parameter's default (repeatable); still overridable at deploy time.")
@config_option
@click.option("--format", "fmt", type=click.Choice(["json", "yaml"]), default="json", show_default=True,
              help="Template format; yaml needs PyYAML.")
def template(role_name: str, params: tuple[str, ...], config_path: str | None, fmt: str) -> None:
    """Print the CloudFormation template of one region role.

    Defaults (retention, interval, format, ledger, prefix) come from the configuration, when there is
    one. The buckets' Object Lock period is the template's RetentionDays, which is also ledgerdr's retention:
    the two cannot disagree.
    """
    from ..aws.template import build_template, render

    parsed = {}
    for item in params:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--param {item!r}: use K=V")
        parsed[key] = value
    config = load_optional(config_path)
    click.echo(render(build_template(role_name, parsed, config), fmt), nl=False)


@aws.command()
@click.option("--output", "-o", default="ledgerdr-lambda.zip", show_default=True, type=click.Path(dir_okay=False),
              help="Where to write the zip.")
@click.option("--python", "python_version", default="3.12", show_default=True,
              help="The Lambda Python runtime's version (3.11, 3.12, 3.13).")
@click.option("--arch", "architecture", type=click.Choice(["x86_64", "arm64"]), default="x86_64",
              show_default=True, help="The functions' architecture.")
@click.option("--ledgerdr-wheel", type=click.Path(dir_okay=False, exists=True),
              help="A ledgerdr wheel built for the runtime, to include the C accelerators (default: pure Python).")
@click.option("--pip-arg", "pip_args", multiple=True, help="Extra argument for pip (repeatable), e.g. --no-index.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
def package(output: str, python_version: str, architecture: str, ledgerdr_wheel: str | None,
            pip_args: tuple[str, ...], as_json: bool) -> None:
    """Build the Lambda deployment zip: Linux wheels of the dependencies for the runtime and
    architecture chosen, and ledgerdr. Upload it to a bucket in each region (the templates' CodeBucket)."""
    from ..aws.package import build_zip

    report = build_zip(Path(output), python_version=python_version, architecture=architecture,
                       ledgerdr_wheel=Path(ledgerdr_wheel) if ledgerdr_wheel else None, pip_args=pip_args)
    if as_json:
        emit_json({"path": str(report.path), "files": report.files, "bytes": report.bytes,
                   "python": report.python_version, "architecture": report.architecture, "native": report.native})
        return
    click.echo(f"wrote {report.path}: {report.files} files, {report.bytes / 1e6:.1f} MB, Python "
               f"{report.python_version} on {report.architecture}, C accelerators "
               f"{'included' if report.native else 'not included (pure Python)'}")


@aws.command()
@click.option("--stack", required=True, help="The stack's name.")
@click.option("--region", help="The stack's region (default: the AWS configuration's).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
def check(stack: str, region: str | None, as_json: bool) -> None:
    """Read-only preflight of a deployed stack: buckets (versioning, Object Lock mode and period,
    encryption, replication), queues' redrive, schedules, alarms.

    Exits 0 when all is well, 2 when something is missing or misconfigured, 8 while an RPO alarm fires,
    7 while a dead-letter alarm fires, 1 while a function's errors alarm fires.
    """
    import boto3

    from ..aws.check import check_stack, exit_code, stack_resources

    session = boto3.session.Session(region_name=region)
    clients: dict[str, object] = {}

    def client(service: str):
        return clients.setdefault(service, session.client(service))

    resources, params = stack_resources(client("cloudformation"), stack)
    findings = check_stack(resources, params, client)
    if as_json:
        emit_json([{"resource": r, "level": f.level, "check": f.check, "message": f.message} for r, f in findings])
    else:
        for logical, f in findings:
            click.echo(f"[{logical}] {f.level.upper():5} {f.check}: {f.message}")
    sys.exit(exit_code(findings))
