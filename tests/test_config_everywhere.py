"""Config everywhere (issue 21 item 2): a global `--config` and $LEDGERDR_CONFIG on every command that reads
a configuration (a command's own `--config` first, then the global one, then the variable, then
./ledgerdr.toml); `${NAME}` references in the TOML; and a configured repository's name wherever a command
takes a repository (restore, verify, standby, promote, worker), through the one resolver `info` uses."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest
from click.testing import CliRunner

from ledgerdr.cli import cli
from ledgerdr.queues.sqlite import SqliteQueue
from ledgerdr.restore import plan_restore
from ledgerdr.targets.embedded import EmbeddedTarget
from support.flows import backed_up_ledger, embedded_digest, two_region_config
from support.serve_process import REGION, ServeProcess


def _run(*args: str, env: dict[str, str] | None = None):
    """`ledgerdr ARGS` in-process, with LEDGERDR_CONFIG unset unless `env` sets it."""
    return CliRunner().invoke(cli, list(args), env={"LEDGERDR_CONFIG": None, **(env or {})})


def _elsewhere(tmp_path: Path, monkeypatch) -> Path:
    """Run from a folder with no ledgerdr.toml, so only --config or the variable can name the file."""
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    monkeypatch.chdir(folder)
    return folder


def _broken_config(path: Path) -> Path:
    path.write_text('[backup]\ninterval = "soon"\n[repositories.primary]\nurl = "x"\n')
    return path


def test_the_global_option_and_the_variable_reach_every_command(tmp_path, monkeypatch):
    config = two_region_config(tmp_path)
    _elsewhere(tmp_path, monkeypatch)
    backup = _run("--config", str(config), "backup", "--once", "--json")
    assert backup.exit_code == 0, backup.output
    assert json.loads(backup.stdout)["recorded"]
    env = {"LEDGERDR_CONFIG": str(config)}
    replicated = _run("replicate", "--json", env=env)
    assert replicated.exit_code == 0, replicated.output
    status = _run("status", "--json", env=env)
    assert status.exit_code == 0, status.output
    assert [r["name"] for r in json.loads(status.stdout)["repositories"]] == ["primary", "secondary"]
    info = _run("-c", str(config), "info", "secondary", "--json")
    assert info.exit_code == 0 and json.loads(info.stdout)["repositories"][0]["name"] == "secondary", info.output
    assert _run("check", env=env).exit_code == 0
    assert _run("compact", "--json", env=env).exit_code == 0
    prom = tmp_path / "ledgerdr.prom"
    assert _run("metrics", "--textfile", str(prom), "--runs-dir", str(tmp_path / "runs"), env=env).exit_code == 0
    assert 'repository="secondary"' in prom.read_text()
    # without either, the command looks for ./ledgerdr.toml and says how to name one
    missing = _run("status")
    assert missing.exit_code == 2 and "ledgerdr.toml does not exist" in missing.stderr
    assert "LEDGERDR_CONFIG" in missing.stderr


def test_a_commands_own_option_beats_the_global_one_which_beats_the_variable_which_beats_the_default(
        tmp_path, monkeypatch):
    config = two_region_config(tmp_path)
    folder = _elsewhere(tmp_path, monkeypatch)
    broken = _broken_config(tmp_path / "broken.toml")
    _broken_config(folder / "ledgerdr.toml")  # the default file, here

    def status(*args: str, env: str | None = None):
        return _run(*args, env={"LEDGERDR_CONFIG": env} if env else None)

    assert status("status").exit_code == 2  # the default file is read, and refused
    assert status("status", env=str(config)).exit_code == 0  # the variable beats the default file
    assert status("--config", str(config), "status", env=str(broken)).exit_code == 0  # global beats variable
    assert status("--config", str(broken), "status", "--config", str(config)).exit_code == 0  # own beats global
    refused = status("--config", str(config), "status", "--config", str(broken))
    assert refused.exit_code == 2 and "backup.interval" in refused.stderr and str(broken) in refused.stderr


def test_a_named_config_file_that_is_missing_is_an_error_even_where_a_config_is_optional(tmp_path, monkeypatch):
    backed_up_ledger(tmp_path, minutes=2, per_minute=3)
    _elsewhere(tmp_path, monkeypatch)
    gone = str(tmp_path / "gone.toml")
    for args in (["info", str(tmp_path / "primary")], ["verify", str(tmp_path / "primary")],
                 ["restore", "--from", str(tmp_path / "primary"), "--to", f"embedded:{tmp_path / 'r.db'}"]):
        result = _run(*args, env={"LEDGERDR_CONFIG": gone})
        assert result.exit_code == 2 and f"{gone} does not exist" in result.stderr, (args, result.output)
        assert not (tmp_path / "r.db").exists()


def test_init_writes_where_the_global_option_points(tmp_path, monkeypatch):
    _elsewhere(tmp_path, monkeypatch)
    written = tmp_path / "conf" / "dr.toml"
    written.parent.mkdir()
    assert _run("--config", str(written), "init").exit_code == 0
    assert written.is_file() and not Path("ledgerdr.toml").exists()


# --- ${NAME} references ------------------------------------------------------------------------------------


def test_references_expand_from_the_environment_with_defaults_and_a_dollar_escape(tmp_path, monkeypatch):
    _elsewhere(tmp_path, monkeypatch)
    config = tmp_path / "refs.toml"
    config.write_text('[source]\npath = "${DR_HOME}/ledger.db"\n'
                      '[repositories.primary]\nurl = "${DR_HOME}/primary"\nregion = "${DR_REGION:-eu-west-1}"\n'
                      '[repositories.secondary]\nurl = "${DR_HOME}/secondary"\nregion = "cost$$centre-${DR_ZONE:-}"\n')
    backed_up_ledger(tmp_path, minutes=2, per_minute=3)
    result = _run("--config", str(config), "status", "--json", env={"DR_HOME": str(tmp_path), "DR_ZONE": "b"})
    assert result.exit_code == 0, result.output
    primary, secondary = json.loads(result.stdout)["repositories"]
    assert primary["region"] == "eu-west-1" and secondary["region"] == "cost$centre-b"
    assert primary["windows"] == 2


def test_an_unset_variable_is_a_config_error_naming_it_and_the_key(tmp_path, monkeypatch):
    _elsewhere(tmp_path, monkeypatch)
    config = tmp_path / "refs.toml"
    config.write_text('[repositories.primary]\nurl = "${DR_UNSET_ROOT}/primary"\n'
                      '[repositories.primary2]\nurl = "p2"\nregion = "${DR_REGION_TOO}"\n')
    result = _run("--config", str(config), "status", env={"DR_UNSET_ROOT": None, "DR_REGION_TOO": ""})
    assert result.exit_code == 2
    assert "repositories.primary.url: environment variable DR_UNSET_ROOT is not set" in result.stderr
    assert "repositories.primary2.region: environment variable DR_REGION_TOO is not set" in result.stderr
    assert not (tmp_path / "p2").exists()  # nothing was created for a configuration that was refused
    as_json = _run("--config", str(config), "status", "--json", env={"DR_UNSET_ROOT": None})
    assert json.loads(as_json.stderr)["exit_code"] == 2


def test_an_expanded_value_is_never_quoted_back_in_an_error(tmp_path, monkeypatch):
    _elsewhere(tmp_path, monkeypatch)
    secret = "s3cr3t-do-not-print"
    config = tmp_path / "refs.toml"
    config.write_text('[source]\nkind = "${DR_KIND}"\n[backup]\nsettle = "${DR_SETTLE}"\n'
                      '[repositories.primary]\nurl = "p"\n')
    result = _run("--config", str(config), "status", env={"DR_KIND": secret, "DR_SETTLE": secret})
    assert result.exit_code == 2
    assert 'source.kind: "${DR_KIND}" (after expanding its references) must be' in result.stderr
    assert 'backup.settle: "${DR_SETTLE}" (after expanding its references) is not a valid duration' in result.stderr
    assert secret not in result.output


def test_a_malformed_reference_is_refused(tmp_path, monkeypatch):
    _elsewhere(tmp_path, monkeypatch)
    config = tmp_path / "refs.toml"
    config.write_text('[repositories.primary]\nurl = "${DR HOME}/p"\n')
    result = _run("--config", str(config), "status")
    assert result.exit_code == 2 and "repositories.primary.url: a malformed reference" in result.stderr


# --- [serve]: its keys in config.py's schema, its references expanded for `serve` alone ----------------------


def test_serve_reads_its_keys_from_the_config_with_the_secret_from_the_environment(tmp_path):
    config = tmp_path / "serve.toml"
    config.write_text('[serve]\naccess_keys = ["AKIDFROMCONFIG:${DR_SERVE_SECRET}"]\nmax_sessions = 4\n')
    with ServeProcess(tmp_path / "ledgers", "--config", str(config),
                      env={"DR_SERVE_SECRET": "from-the-environment"}) as running:
        qldb = boto3.client("qldb", endpoint_url=running.url, region_name=REGION,
                            aws_access_key_id="AKIDFROMCONFIG", aws_secret_access_key="from-the-environment")
        assert qldb.list_ledgers()["Ledgers"] == []


def test_serve_config_problems_are_named_and_secrets_are_not_printed(tmp_path, monkeypatch):
    _elsewhere(tmp_path, monkeypatch)
    config = tmp_path / "serve.toml"
    config.write_text('[serve]\naccess_keys = ["${DR_KEY}"]\nport = "8443"\nbogus = 1\n')
    secret = "wholly-secret-no-colon"
    result = _run("serve", "--config", str(config), "--data", str(tmp_path), env={"DR_KEY": secret})
    assert result.exit_code == 2
    assert 'serve.port: "8443" must be a whole number' in result.stderr and "serve.bogus: unknown setting" in result.stderr
    config.write_text('[serve]\naccess_keys = ["${DR_KEY}"]\n')
    result = _run("serve", "--config", str(config), "--data", str(tmp_path), env={"DR_KEY": secret})
    assert result.exit_code == 2 and "serve.access_keys[0]: a key is not KEY_ID:SECRET" in result.stderr
    assert secret not in result.output


def test_other_commands_check_the_serve_tables_keys_but_need_not_have_its_secrets(tmp_path, monkeypatch):
    config = two_region_config(tmp_path)
    _elsewhere(tmp_path, monkeypatch)
    text = config.read_text()
    config.write_text(text + '\n[serve]\naccess_keys = ["app:${DR_NOT_SET_HERE}"]\n')
    assert _run("--config", str(config), "status").exit_code == 0
    config.write_text(text + '\n[serve]\naccess_key = "app:x"\n')
    result = _run("--config", str(config), "status")
    assert result.exit_code == 2 and "serve.access_key: unknown setting" in result.stderr


# --- a configured repository's name ------------------------------------------------------------------------


@pytest.fixture
def named(tmp_path, monkeypatch) -> Path:
    """A backed-up ledger whose repository the config calls `vault`; the commands run from another folder."""
    backed_up_ledger(tmp_path, minutes=3, per_minute=4)
    config = tmp_path / "dr.toml"
    config.write_text(f'[source]\npath = "{tmp_path / "ledger.db"}"\n'
                      f'[repositories.vault]\nurl = "{tmp_path / "primary"}"\n'
                      f'[repositories.copy]\nurl = "{tmp_path / "copy"}"\n')
    _elsewhere(tmp_path, monkeypatch)
    return config


def test_verify_and_restore_take_a_configured_name(named, tmp_path):
    env = {"LEDGERDR_CONFIG": str(named)}
    verified = _run("verify", "vault", "--json", env=env)
    assert verified.exit_code == 0 and json.loads(verified.stdout)["blocks"] > 0, verified.output
    restored = _run("restore", "--from", "vault", "--to", f"embedded:{tmp_path / 'r.db'}", "--workers", "0",
                    "--json", env=env)
    assert restored.exit_code == 0, restored.output
    report = json.loads(restored.stdout)
    assert report["verdict"] and report["source"] == str(tmp_path / "primary")


def test_standby_and_promote_take_a_configured_name(named, tmp_path):
    target = f"embedded:{tmp_path / 'standby.db'}"
    followed = _run("--config", str(named), "standby", "--from", "vault", "--to", target, "--once", "--json")
    assert followed.exit_code == 0, followed.output
    assert json.loads(followed.stdout.splitlines()[-1])["lag_blocks"] == 0
    promoted = _run("promote", "--config", str(named), "--from", "vault", "--to", target,
                    "--state-dir", str(tmp_path / "state"))
    assert promoted.exit_code == 0 and "the ledger is writable" in promoted.stdout, promoted.output


def test_a_worker_takes_a_configured_name(named, tmp_path):
    from ledgerdr.stores import open_location

    plan = plan_restore(open_location(str(tmp_path / "primary")))
    queue = SqliteQueue(tmp_path / "q.db", name="units")
    queue.send_batch([u.to_bytes() for u in plan.units])
    queue.close()
    target = tmp_path / "worked.db"
    EmbeddedTarget(target).open_lineage(plan.strand_id, plan.ledger_name or "")
    result = _run("worker", "--config", str(named), "--queue", f"sqlite:///{tmp_path / 'q.db'}?name=units",
                  "--from", "vault", "--to", f"embedded:{target}", "--state", str(tmp_path / "results"))
    assert result.exit_code == 0 and f"applied {len(plan.units)} units" in result.stdout, result.output
    reference = _run("restore", "--config", str(named), "--from", "vault", "--to",
                     f"embedded:{tmp_path / 'ref.db'}", "--workers", "0", "--state-dir", str(tmp_path / "s2"))
    assert reference.exit_code == 0, reference.output
    finished = EmbeddedTarget(target)
    finished.finalize()
    finished.close()
    assert embedded_digest(target) == embedded_digest(tmp_path / "ref.db")


@pytest.mark.parametrize("args", [
    ["verify", "valut"],
    ["restore", "--from", "valut", "--to", "embedded:r.db"],
    ["standby", "--from", "valut", "--to", "embedded:s.db", "--once"],
    ["promote", "--from", "valut", "--to", "embedded:s.db"],
    ["worker", "--queue", "sqlite:///q.db?name=u", "--from", "valut", "--to", "embedded:w.db", "--state", "st"],
    ["info", "valut"],
], ids=lambda args: args[0])
def test_an_unknown_name_is_a_usage_error_listing_the_configured_ones(named, args):
    result = _run("--config", str(named), *args)
    assert result.exit_code == 2, result.output
    assert "no repository named 'valut' (configured: vault, copy)" in result.stderr
    assert not any(Path(name).exists() for name in ("r.db", "s.db", "w.db", "q.db", "st", "valut"))
