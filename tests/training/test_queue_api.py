"""The batch queue API: bearer tokens (hashed, revocable), claim, download, ack, release, extend, expiry."""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from pathlib import Path

import pytest
from django.test import Client
from django.utils import timezone

from apps.training import services
from apps.training.models import ApiToken, ExportBatch

pytestmark = pytest.mark.django_db


@pytest.fixture
def token(reviewer):
    return services.api_token_create(name="trainer", created_by=reviewer)[1]


def ready_batch(tmp_path: Path, n: int = 1) -> ExportBatch:
    folder = tmp_path / f"batch-{n}"
    folder.mkdir()
    data = b'{"text": "x"}\n'
    (folder / "train.jsonl").write_bytes(data)
    (folder / "manifest.json").write_text("{}", encoding="utf-8")
    files = {"train.jsonl": {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data), "lines": 1}}
    return ExportBatch.objects.create(
        format="karakuri-sft",
        status=ExportBatch.Status.READY,
        seed=1,
        validation_ratio=0,
        out_dir=str(tmp_path),
        path=str(folder),
        manifest={"files": files, "counts": {"examples": 1}},
    )


def api(token: str | None = None) -> Client:
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}
    return Client(**headers)


def post(client: Client, url: str, body: dict | None = None):
    return client.post(url, data=json.dumps(body or {}), content_type="application/json")


def test_a_token_is_stored_only_as_its_hash(reviewer):
    row, token = services.api_token_create(name="pipeline", created_by=reviewer)
    assert token.startswith("kcs_") and len(token) > 40
    assert row.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert token not in {row.token_hash, row.prefix} and token.startswith(row.prefix)
    assert ApiToken.objects.filter(token_hash__contains=token[5:20]).count() == 0


@pytest.mark.parametrize("header", [None, "Bearer kcs_not-a-real-token", "Basic dXNlcjpwdw==", "Bearer "])
def test_it_refuses_requests_without_a_valid_token(header, tmp_path):
    ready_batch(tmp_path)
    client = Client(HTTP_AUTHORIZATION=header) if header else Client()
    response = post(client, "/api/training/batches/claim/")
    assert response.status_code == 401
    assert response.json()["error"]["code"] in {"not_authenticated", "authentication_failed"}
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_a_revoked_token_stops_working(reviewer, token, tmp_path):
    ready_batch(tmp_path)
    row = ApiToken.objects.get()
    services.api_token_revoke(token_id=row.id, revoked_by=reviewer)
    assert post(api(token), "/api/training/batches/claim/").status_code == 401


def test_claim_download_and_ack(token, tmp_path):
    batch = ready_batch(tmp_path)
    response = post(api(token), "/api/training/batches/claim/")
    assert response.status_code == 200
    body = response.json()
    assert (body["id"], body["status"]) == (batch.id, "claimed")
    assert body["claim_id"] and body["claim_expires_at"]
    (file,) = body["files"]
    assert file["name"] == "train.jsonl" and file["url"].endswith(f"/api/training/batches/{batch.id}/files/train.jsonl")
    download = api(token).get(file["url"])
    content = b"".join(download.streaming_content)
    assert download.status_code == 200 and hashlib.sha256(content).hexdigest() == file["sha256"]
    assert api(token).get(body["manifest_url"]).status_code == 200
    # Nothing else is ready now.
    assert post(api(token), "/api/training/batches/claim/").status_code == 204
    ack = post(api(token), f"/api/training/batches/{batch.id}/ack/", {"claim_id": body["claim_id"]})
    assert ack.status_code == 200 and ack.json()["status"] == "consumed"
    again = post(api(token), f"/api/training/batches/{batch.id}/ack/", {"claim_id": body["claim_id"]})
    assert again.status_code == 200, "a repeated ack is harmless"
    assert ApiToken.objects.get().last_used_at is not None


def test_claims_hand_out_the_oldest_batch_first_and_never_the_same_one_twice(token, tmp_path):
    first, second = ready_batch(tmp_path, 1), ready_batch(tmp_path, 2)
    got = [post(api(token), "/api/training/batches/claim/").json()["id"] for _ in range(2)]
    assert got == [first.id, second.id]


def test_only_files_in_the_manifest_can_be_downloaded(token, tmp_path):
    batch = ready_batch(tmp_path)
    (tmp_path / "secret.txt").write_text("no")
    for name in ["secret.txt", "..%2Fsecret.txt", "validation.jsonl"]:
        assert api(token).get(f"/api/training/batches/{batch.id}/files/{name}").status_code == 404


def test_a_batch_that_is_not_ready_is_invisible(token, tmp_path):
    batch = ready_batch(tmp_path)
    ExportBatch.objects.filter(id=batch.id).update(status=ExportBatch.Status.RUNNING)
    assert post(api(token), "/api/training/batches/claim/").status_code == 204
    assert api(token).get(f"/api/training/batches/{batch.id}/").status_code == 404
    assert api(token).get(f"/api/training/batches/{batch.id}/files/train.jsonl").status_code == 404


def test_release_puts_it_back_for_the_next_trainer(token, tmp_path):
    batch = ready_batch(tmp_path)
    claim = post(api(token), "/api/training/batches/claim/").json()
    released = post(api(token), f"/api/training/batches/{batch.id}/release/", {"claim_id": claim["claim_id"]})
    assert released.json()["status"] == "ready"
    assert post(api(token), "/api/training/batches/claim/").json()["id"] == batch.id


def test_an_expired_claim_returns_to_the_queue_and_the_old_claim_stops_working(token, tmp_path):
    batch = ready_batch(tmp_path)
    old = post(api(token), "/api/training/batches/claim/", {"lease_seconds": 60}).json()
    ExportBatch.objects.filter(id=batch.id).update(claim_expires_at=timezone.now() - timedelta(seconds=1))
    new = post(api(token), "/api/training/batches/claim/").json()
    assert new["id"] == batch.id and new["claim_id"] != old["claim_id"]
    for action in ("ack", "release", "extend"):
        response = post(api(token), f"/api/training/batches/{batch.id}/{action}/", {"claim_id": old["claim_id"]})
        assert response.status_code == 409, action
        assert response.json()["error"]["code"] == "claim_conflict"


def test_an_expired_claim_nobody_took_can_still_be_acknowledged(token, tmp_path):
    batch = ready_batch(tmp_path)
    claim = post(api(token), "/api/training/batches/claim/").json()
    ExportBatch.objects.filter(id=batch.id).update(claim_expires_at=timezone.now() - timedelta(seconds=1))
    ack = post(api(token), f"/api/training/batches/{batch.id}/ack/", {"claim_id": claim["claim_id"]})
    assert ack.json()["status"] == "consumed"


def test_extend_keeps_holding_it(token, tmp_path):
    batch = ready_batch(tmp_path)
    claim = post(api(token), "/api/training/batches/claim/", {"lease_seconds": 60}).json()
    extended = post(
        api(token), f"/api/training/batches/{batch.id}/extend/", {"claim_id": claim["claim_id"], "lease_seconds": 7200}
    )
    assert extended.status_code == 200
    batch.refresh_from_db()
    assert batch.claim_expires_at > timezone.now() + timedelta(seconds=7000)


@pytest.mark.parametrize("body", [{"lease_seconds": 5}, {"lease_seconds": "long"}, {"lease_seconds": 10**9}])
def test_it_refuses_a_bad_lease(token, tmp_path, body):
    ready_batch(tmp_path)
    response = post(api(token), "/api/training/batches/claim/", body)
    assert response.status_code == 400 and "lease_seconds" in response.json()["error"]["message"]


def test_ack_needs_a_claim_id(token, tmp_path):
    batch = ready_batch(tmp_path)
    post(api(token), "/api/training/batches/claim/")
    assert post(api(token), f"/api/training/batches/{batch.id}/ack/").status_code == 400
    assert post(api(token), "/api/training/batches/999/ack/", {"claim_id": "x"}).status_code == 404


def test_the_api_is_in_the_openapi_schema(client):
    response = client.get("/api/schema/")
    assert b"/api/training/batches/claim/" in response.content
