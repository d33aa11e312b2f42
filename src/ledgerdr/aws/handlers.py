"""AWS Lambda handlers: thin wrappers over ledgerdr's flows, one per function of the templates.

Each handler reads its settings from the environment (runtime.py: `LEDGERDR_CONFIG_TOML` and a few
more), calls one flow, logs one JSON line with the structured result and returns it. Errors become
results through errors.exit_code_for (the one table of exit codes); a result that is not a success is
raised as `HandlerFailed`, so that Lambda counts an error. The SQS-triggered handlers (`restore_worker`,
`standby`) answer with partial batch failures instead: `{"batchItemFailures": [{"itemIdentifier": id}]}`
names the messages to deliver again; SQS moves a message to the dead-letter queue after the queue's
maxReceiveCount deliveries, so one bad unit neither blocks nor re-runs its batch.

Handler names (the templates' `Handler` property is `ledgerdr.aws.handlers.<name>`): backup,
verify_replica, plan_restore, restore_worker, finalize_restore, standby, compact, drill.
"""

from __future__ import annotations

import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ..errors import ConfigError, ExitCode, StoreError
from ..journal.ids import new_id
from ..repository import (
    WINDOWS,
    RecordCache,
    WindowRecord,
    iso_ms,
    parse_iso,
    read_windows,
    utcnow,
    window_name,
)
from ..status import repository_status
from ..stores import Location, open_location
from .events import parameters, s3_objects, sqs_records
from .runtime import HandlerFailed, Settings, emit_metrics, error_result, finish, log, run_handler

__all__ = ["HandlerFailed", "backup", "compact", "drill", "finalize_restore", "plan_restore", "restore_worker",
           "standby", "verify_replica"]

RESULTS_FOLDER = "unit-results/"  # under LEDGERDR_STATE_URL, as `restore` keeps them under its state folder
PLANS_FOLDER = "plans/"
CERTIFICATES_FOLDER = "certificates/"  # finalize_restore writes a verified restore's certificate here


# ------------------------------------------------------------------------------------------- backup


def backup(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """EventBridge Scheduler → export, verify and record every due window of the source in the primary."""
    return run_handler("backup", event, _backup)


def _backup(event: Any, settings: Settings) -> dict[str, Any]:
    from ..backup import run_backup
    from ..cli.common import backup_policy, open_repository
    from ..sources import open_source

    config = settings.config
    source = open_source(config.source)
    location = open_repository(config.primary)
    report = run_backup(source, location, backup_policy(config))
    newest = report.recorded[-1].window_start if report.recorded else _newest_recorded(location)
    _rpo_metric(settings, config.primary.name, location, newest)
    return {"exit_code": ExitCode.VERIFICATION if report.failed else ExitCode.OK,
            "recorded": [w.window_start for w in report.recorded], "already_recorded": report.already_recorded,
            "failed": [{"window_start": s, "reason": r} for s, r in report.failed],
            "next_due": report.next_due.isoformat() if report.next_due else None,
            "scheduled_time": event.get("scheduled_time") if isinstance(event, dict) else None}


def _rpo_metric(settings: Settings, name: str, location: Location, newest_start: str | None) -> float | None:
    """RPO of repository `name` (CONTRACTS §7: now − `window_end` of its newest verified window, which
    starts at `newest_start`) as the `RPOSeconds` metric, dimension `Repository`. Reads that one record
    only: a run must not cost the whole history. The templates' alarm fires above the target, and also
    when the metric stops arriving (so no window verified yet emits nothing, and alarms)."""
    if newest_start is None:
        return None
    key = location.key(WINDOWS + window_name(parse_iso(newest_start)) + ".json")
    try:
        end = WindowRecord.from_bytes(location.store.get(key)).window_end
    except (StoreError, ValueError, KeyError, TypeError) as exc:  # unknown RPO: no metric, so the alarm fires
        log({"level": "warning", "rpo": "unknown", "repository": name, "key": key, "error": str(exc)[:500]})
        return None
    rpo = (utcnow() - parse_iso(end)).total_seconds()
    emit_metrics(settings.namespace, {"Repository": name}, {"RPOSeconds": (rpo, "Seconds")})
    return rpo


def _newest_recorded(location: Location) -> str | None:
    """`window_start` of the newest window record (record keys are fixed-width start times: the last
    listed is the newest)."""
    keys = [info.key for info in location.store.list(location.folder(WINDOWS)) if info.key.endswith(".json")]
    if not keys:
        return None
    return iso_ms(datetime.strptime(keys[-1].rsplit("/", 1)[-1], "%Y%m%dT%H%M%SZ.json").replace(tzinfo=UTC))


# ------------------------------------------------------------------------------------------- verify


def verify_replica(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """Scheduled, or on S3 events at the replica: verify what S3 replication delivered and advance the
    replica's watermark. Copies nothing (S3 replication copies).

    The window records are read from the replica itself (replication delivers them with the exports): the
    check then needs no access to the primary's region and keeps working after its loss. Every object is
    re-read there and checked against its record's sha256 and the chain from the last watermark. An
    object of a window recorded less than `LEDGERDR_REPLICATION_GRACE` ago that has not arrived is
    *pending* (exit 0); later, or any other problem, is a failure (exit 4) naming key and block address."""
    return run_handler("verify_replica", event, _verify_replica)


def _verify_replica(event: Any, settings: Settings) -> dict[str, Any]:
    from ..cli.common import open_repository
    from ..replicate import ReplicateOptions, replicate

    repo = settings.repository(default_primary=False)
    location = open_repository(repo)
    cache = RecordCache()  # records the flow read are not fetched again below
    report = replicate(location, location, ReplicateOptions.for_replica(repo, settings.config, verify_only=True),
                       cache=cache)
    mark = report.watermark
    verified_to = mark.windows_verified[-1] if mark and mark.windows_verified else None
    pending, failures = _pending_or_failed(location, report.problems, settings.replication_grace, verified_to,
                                           cache)
    rpo = _rpo_metric(settings, repo.name, location, verified_to)
    return {"exit_code": ExitCode.VERIFICATION if failures else ExitCode.OK, "repository": repo.name,
            "windows_verified": report.windows_verified, "windows_covered": report.windows_covered,
            "watermark": {"last_seq": mark.last_seq, "last_block_hash": mark.last_block_hash,
                          "verified_at": mark.verified_at} if mark else None,
            "rpo_seconds": rpo, "pending": [p.__dict__ for p in pending],
            "problems": [p.__dict__ for p in failures],
            "triggered_by": [key for _, key in s3_objects(event)][:20]}


def _pending_or_failed(location: Location, problems: list, grace: timedelta, verified_to: str | None,
                       cache: RecordCache) -> tuple[list, list]:
    """Split problems into those of objects still within their replication grace, and real failures.

    Pending: a missing object of a window recorded less than `grace` ago, and the gap its absence leaves
    in that window's chain. Anything else (an altered object, a fork, an old window's missing object) fails."""
    if not problems:
        return [], []
    window_of: dict[str, str] = {}
    cutoff = utcnow() - grace
    for window in read_windows(location, after=verified_to, cache=cache).windows:  # problems are after it
        if parse_iso(window.recorded_at) > cutoff:
            for key in (*(obj.key for obj in window.objects), location.key(WINDOWS + window.key_name)):
                window_of[key] = window.window_start
    in_flight = {window_of[p.key] for p in problems if p.kind == "missing_object" and p.key in window_of}
    pending = [p for p in problems if p.kind in ("missing_object", "gap") and window_of.get(p.key) in in_flight]
    return pending, [p for p in problems if p not in pending]


# ------------------------------------------------------------------------------------------- restore


def plan_restore(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """On demand: plan a restore from the repository and send its work units to the work queue.

    Event (all optional): `until` (ISO-8601), `until_block`, `allow_gaps`, `use_snapshots`. Units the
    target already holds are not sent (a pilot light or a retried plan). Every send is checked: a unit
    that cannot be enqueued fails the call, naming it (reference defect 3)."""
    return run_handler("plan_restore", event, _plan_restore)


def _plan_restore(event: Any, settings: Settings) -> dict[str, Any]:
    from ..queues import open_queue
    from ..restore.plan import plan_restore as plan_flow
    from ..restore.run import split_units
    from ..targets import open_target

    args = parameters(event, {"until", "until_block", "allow_gaps", "use_snapshots"})
    source = _source_location(settings)
    state = open_location(settings.require("LEDGERDR_STATE_URL"))
    plan = plan_flow(source, until=_when(args.get("until")), until_block=args.get("until_block"),
                     allow_gaps=bool(args.get("allow_gaps", False)),
                     use_snapshots=bool(args.get("use_snapshots", True)))
    plan.units = split_units(plan.units)
    state.store.put(state.key(f"{PLANS_FOLDER}{plan.restore_id}.json"), plan.to_bytes())
    target = open_target(settings.require("LEDGERDR_TARGET_URL"))
    try:
        held = target.applied_units()
    finally:
        target.close()
    pending = [u for u in plan.units if u.unit_id not in held]
    queue = open_queue(settings.require("LEDGERDR_WORK_QUEUE_URL"), max_attempts=settings.max_attempts)
    try:
        queue.send_batch([u.to_bytes() for u in pending])  # raises SendIncomplete naming what was not sent
    finally:
        queue.close()
    return {"restore_id": plan.restore_id, "source": source.url, "units": len(plan.units), "sent": len(pending),
            "already_held": len(plan.units) - len(pending), "lost_blocks": plan.gaps, "warnings": plan.warnings,
            "next": {"finalize_restore": {"restore_id": plan.restore_id}}}


def restore_worker(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """SQS-triggered: verify and apply each work unit of the batch in the target, record its result.

    Answers `batchItemFailures` naming the units that failed; each failure is logged with its reason
    (the dead-letter queue keeps the message, the log line says why). Re-delivery is harmless: the
    target skips units it holds and history is inserted once."""
    return _run_batch("restore_worker", event, _restore_batch)


def _restore_batch(records: list, settings: Settings) -> list[str]:
    from ..queues.sqs import decode_body
    from ..restore.shapes import WorkUnit
    from ..restore.worker import process_unit
    from ..targets import open_target

    source = _source_location(settings)
    state = _results_location(settings)
    target = open_target(settings.require("LEDGERDR_TARGET_URL"))  # one per batch, not per message
    failed = []
    try:
        for record in records:
            started = time.monotonic()
            unit = None
            try:
                unit = WorkUnit.from_bytes(decode_body(record.body))
                result = process_unit(source, target, state, unit)
            except Exception as exc:  # the unit's failure, never the batch's
                failed.append(record.message_id)
                log({"level": "error", "handler": "restore_worker", "message_id": record.message_id,
                     "receive_count": record.receive_count, "unit": unit.key if unit else None,
                     "blocks": f"{unit.first_seq}..{unit.last_seq}" if unit else None,
                     "error_type": type(exc).__name__, "error": str(exc)[:2000]})
                continue
            log({"level": "info", "handler": "restore_worker", "message_id": record.message_id,
                 "unit": unit.key, "unit_id": unit.unit_id, "revisions": result.revisions,
                 "seconds": round(time.monotonic() - started, 3)})
    finally:
        target.close()
    return failed


def finalize_restore(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """On demand, once the work queue is drained: verify the target against the journal (state digest),
    build indexes, report. Event: `restore_id` (from plan_restore). Exit 7 unless verified; a queue that
    still holds units is reported as not finished (nothing is changed)."""
    return run_handler("finalize_restore", event, _finalize_restore)


def _finalize_restore(event: Any, settings: Settings) -> dict[str, Any]:
    from ..queues import open_queue
    from ..restore.plan import RestorePlan
    from ..restore.run import finalize_restore as finalize_flow

    restore_id = parameters(event, {"restore_id"}).get("restore_id")
    if not restore_id:
        raise ConfigError("finalize_restore needs {\"restore_id\": ...} (plan_restore's result names it)")
    started = time.monotonic()
    state = open_location(settings.require("LEDGERDR_STATE_URL"))
    plan = RestorePlan.from_bytes(state.store.get(state.key(f"{PLANS_FOLDER}{restore_id}.json")))
    queue = open_queue(settings.require("LEDGERDR_WORK_QUEUE_URL"), max_attempts=settings.max_attempts)
    try:
        counts = queue.counts()
        dead = [{"unit": _unit_key(d.body), "attempts": d.attempts, "reason": d.reason}
                for d in queue.dead_letters()] if counts.dead else []
    finally:
        queue.close()
    if counts.visible or counts.in_flight:
        return {"exit_code": ExitCode.RESTORE, "restore_id": restore_id, "finished": False,
                "queued": counts.visible, "in_flight": counts.in_flight,
                "hint": "workers are still applying units; invoke finalize_restore again when the queue is empty"}
    source = _source_location(settings)
    report = finalize_flow(plan, source, settings.require("LEDGERDR_TARGET_URL"),
                           _results_location(settings), dead_letters=dead, started=started)
    certificate = None
    if report.verdict:  # every verified restore leaves its certificate: here in the state bucket
        from ..certificate import build_certificate, certificate_bytes

        certificate = state.key(f"{CERTIFICATES_FOLDER}{restore_id}.json")
        # signed with the record key when the config sets one, as the records are (the location carries it)
        state.store.put(certificate, certificate_bytes(build_certificate(report, source), source.signer))
    return {"exit_code": ExitCode.OK if report.verdict else ExitCode.RESTORE, "finished": True,
            "certificate": certificate, **report.to_json()}


def _unit_key(body: bytes) -> str | None:
    from ..restore.shapes import WorkUnit

    try:
        return WorkUnit.from_bytes(body).key
    except Exception:  # a foreign or damaged message: its text is in the dead-letter queue
        return None


# ------------------------------------------------------------------------------------------- standby


def standby(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """S3 notifications (replica bucket, `<prefix>_ledgerdr/windows/`) → SQS → apply every new window that
    chains onto the standby's last block. A notification only means "look again": one round serves the
    whole batch. A gap, a fork or an object that does not verify fails every record of the batch, so the
    messages reach the dead-letter queue and its alarm, while the standby's position records why."""
    return _run_batch("standby", event, _standby_batch)


def _standby_batch(records: list, settings: Settings) -> list[str]:
    from ..restore.standby import follow_once
    from ..targets import open_target

    location = _source_location(settings)
    target = open_target(settings.require("LEDGERDR_STANDBY_URL"))
    try:
        report = follow_once(location, target)
    except Exception as exc:
        log({"level": "error", "handler": "standby", "error_type": type(exc).__name__, "error": str(exc)[:2000],
             "messages": len(records)})
        return [r.message_id for r in records]
    finally:
        target.close()
    emit_metrics(settings.namespace, {"Repository": settings.repository(default_primary=False).name},
                 {"StandbyLagSeconds": (report.lag_seconds or 0.0, "Seconds"),
                  "StandbyLagBlocks": (float(report.lag_blocks), "Count")})
    # A checkpoint held back by a reader (`finalize_deferred`) is a warning: the windows are committed and the
    # next window's round checkpoints them; failing the batch would only re-deliver it to a round with nothing new.
    level = "info" if report.finalize_deferred is None else "warning"
    log({"level": level, "handler": "standby", **report.to_json(), "messages": len(records)})
    return []


# ------------------------------------------------------------------------------------------- compact, drill


def compact(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """Nightly schedule: fold verified windows into a snapshot (new objects only, nothing deleted)."""
    return run_handler("compact", event, _compact)


def _compact(event: Any, settings: Settings) -> dict[str, Any]:
    from ..cli.common import open_repository
    from ..compact import compact as compact_flow

    repo = settings.repository(default_primary=True)
    report = compact_flow(open_repository(repo), retention=timedelta(days=settings.config.backup.retention_days))
    return {"repository": repo.name, **report.to_json()}


def drill(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """On demand: restore the repository (the replica by default) into a throwaway target, verify it
    against the journal, and record RPO and RTO as metrics (`DrillRPOSeconds`, `DrillRTOSeconds`).
    Event (optional): `until`, `until_block`. The target is `LEDGERDR_DRILL_TARGET_URL`, or a fresh
    embedded ledger under /tmp. Exit 7 unless the restore verified."""
    return run_handler("drill", event, _drill)


def _drill(event: Any, settings: Settings) -> dict[str, Any]:
    from ..restore.run import RestoreOptions, restore

    args = parameters(event, {"until", "until_block"})
    repo = settings.repository(default_primary=False)
    location = _source_location(settings)
    drill_id = new_id()
    with tempfile.TemporaryDirectory(prefix="ledgerdr-drill-") as scratch:
        target = settings.get("LEDGERDR_DRILL_TARGET_URL") or f"embedded:{Path(scratch) / 'drill.db'}"
        status = repository_status(repo.name, repo.region, location, now=utcnow(),
                                   primary=repo.name == settings.config.primary.name,
                                   primary_name=settings.config.primary.name)
        report = restore(location.url, target, RestoreOptions(
            until=_when(args.get("until")), until_block=args.get("until_block"), workers=0,
            state_dir=Path(scratch) / "state"))
        certificate = None
        if report.verdict:  # the drill's restore is thrown away; its certificate travels in the result
            from ..certificate import build_certificate, seal

            certificate = seal(build_certificate(report, location), location.signer)
    emit_metrics(settings.namespace, {"Repository": repo.name},
                 {"DrillRTOSeconds": (report.rto_seconds, "Seconds"),
                  **({"DrillRPOSeconds": (status.rpo_seconds, "Seconds")} if status.rpo_seconds is not None else {})})
    return {"exit_code": ExitCode.OK if report.verdict else ExitCode.RESTORE, "drill_id": drill_id,
            "repository": repo.name, "at": iso_ms(utcnow()), "rpo_seconds": status.rpo_seconds,
            "rto_seconds": report.rto_seconds, "verified": report.verdict, "last_seq": report.last_seq,
            "revisions": report.revisions, "journal_state_digest": report.journal_state_digest,
            "target_state_digest": report.target_state_digest, "problems": report.problems,
            "certificate": certificate}


# ------------------------------------------------------------------------------------------- shared


def _source_location(settings: Settings) -> Location:
    """The repository restores, standbys and drills read: `LEDGERDR_REPOSITORY`, else the first replica."""
    from ..cli.common import open_repository

    return open_repository(settings.repository(default_primary=False))


def _results_location(settings: Settings) -> Location:
    state = open_location(settings.require("LEDGERDR_STATE_URL"))
    return Location(state.store, state.folder(RESULTS_FOLDER))


def _when(text: Any) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"until: {text!r} is not an ISO-8601 time (e.g. 2026-11-23T10:00:00Z)") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _run_batch(name: str, event: Any, body) -> dict[str, Any]:
    """An SQS-triggered handler: `body(records, settings)` returns the message ids to deliver again. An
    error that is no single message's (configuration, an unreachable target) fails the whole invocation:
    Lambda retries the batch, and SQS dead-letters it if it never works."""
    started = time.monotonic()
    records = sqs_records(event)
    try:
        failed = body(records, Settings.from_env())
    except Exception as exc:  # not one message's fault (configuration, target unreachable): the whole batch
        finish(name, {**error_result(exc), "messages": len(records)}, started)  # raises HandlerFailed
    log({"level": "error" if failed else "info", "handler": name, "messages": len(records),
         "failed": len(failed), "seconds": round(time.monotonic() - started, 3)})
    return {"batchItemFailures": [{"itemIdentifier": mid} for mid in failed]}
