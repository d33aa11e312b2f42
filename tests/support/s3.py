"""S3 buckets under moto as the tests need them, and the other account a replica can live in."""

from __future__ import annotations

from ledgerdr.stores.s3 import S3Store

OTHER_ACCOUNT_ROLE = "arn:aws:iam::222222222222:role/ledgerdr-dr"  # a replica in another account


def make_bucket(client, name: str, *, locked: bool = True, versioned: bool | None = None,
                default_days: int | None = None) -> str:
    """A bucket in the client's region; `locked` enables Object Lock (and with it versioning)."""
    region = client.meta.region_name
    extra = {} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}
    client.create_bucket(Bucket=name, ObjectLockEnabledForBucket=locked, **extra)
    if versioned if versioned is not None else locked:
        client.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    if default_days:
        client.put_object_lock_configuration(Bucket=name, ObjectLockConfiguration={
            "ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Days": default_days}}})
    return name


def credentials_of(store: S3Store) -> dict[str, str]:
    """The session credentials `store` signs with (after its role was assumed)."""
    creds = store.client._request_signer._credentials.get_frozen_credentials()
    return {"aws_access_key_id": creds.access_key, "aws_secret_access_key": creds.secret_key,
            "aws_session_token": creds.token}
