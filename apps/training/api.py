"""The batch queue API for the fine-tuning pipeline, at /api/training/.

Authenticate with `Authorization: Bearer <token>` (a token a supervisor created on /console/training/tokens/).

    POST /api/training/batches/claim/            → 200 the oldest ready batch, now yours; 204 when none is ready
    GET  /api/training/batches/<id>/             → the batch and its manifest
    GET  /api/training/batches/<id>/files/<name> → one of its files (names as in the manifest, or manifest.json)
    POST /api/training/batches/<id>/ack/         {"claim_id"} → consumed; done with it
    POST /api/training/batches/<id>/release/     {"claim_id"} → back to the queue for another trainer
    POST /api/training/batches/<id>/extend/      {"claim_id"} → hold it for another lease

A claim lasts TRAINING_CLAIM_TIMEOUT seconds (or `lease_seconds` in the claim's body, up to a day); one not
acknowledged, released or extended in time returns to the queue, and its claim_id stops working once another
trainer claims the batch. Errors are JSON: {"error": {"code": ..., "message": ...}}.
"""

from __future__ import annotations

from pathlib import Path

from django.http import FileResponse
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import exceptions, serializers, status
from rest_framework.authentication import BaseAuthentication
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework.views import exception_handler as drf_exception_handler

from apps.training import services
from apps.training.models import ApiToken, ExportBatch

MAX_LEASE_SECONDS = 24 * 3600
_DOWNLOADABLE = (ExportBatch.Status.READY, ExportBatch.Status.CLAIMED, ExportBatch.Status.CONSUMED)


class ApiTokenAuthentication(BaseAuthentication):
    def authenticate(self, request):
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        row = services.api_token_authenticate(token.strip())
        if row is None:
            raise exceptions.AuthenticationFailed("unknown or revoked token")
        return (None, row)

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="training"'


class HasApiToken(BasePermission):
    def has_permission(self, request, view) -> bool:
        if not isinstance(request.auth, ApiToken):
            raise exceptions.NotAuthenticated("send Authorization: Bearer <token>")
        return True


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "claim_conflict"
    default_detail = "this claim is not the batch's current claim"


def exception_handler(exc, context):
    response = drf_exception_handler(exc, context)
    if response is not None:
        code = getattr(exc, "default_code", "error")
        if isinstance(exc, exceptions.APIException):
            codes = exc.get_codes()
            code = codes if isinstance(codes, str) else code
        detail = response.data.get("detail", response.data) if isinstance(response.data, dict) else response.data
        response.data = {"error": {"code": code, "message": str(detail)}}
    return response


class _QueueView(APIView):
    authentication_classes = [ApiTokenAuthentication]
    permission_classes = [HasApiToken]

    def get_exception_handler(self):
        return exception_handler


def _batch_json(batch: ExportBatch, request: Request, *, with_claim: bool = False) -> dict:
    manifest = batch.manifest or {}
    data = {
        "id": batch.id,
        "name": batch.name,
        "format": batch.format,
        "status": batch.status,
        "created_at": batch.created_at,
        "finished_at": batch.finished_at,
        "files": [
            {
                "name": name,
                **info,
                "url": request.build_absolute_uri(reverse("training-api:batch-file", args=[batch.id, name])),
            }
            for name, info in manifest.get("files", {}).items()
        ],
        "manifest_url": request.build_absolute_uri(
            reverse("training-api:batch-file", args=[batch.id, "manifest.json"])
        ),
        "manifest": manifest,
    }
    if with_claim:
        data["claim_id"] = str(batch.claim_id)
        data["claim_expires_at"] = batch.claim_expires_at
    return data


BatchSchema = inline_serializer(
    "TrainingBatch",
    {
        "id": serializers.IntegerField(),
        "name": serializers.CharField(),
        "format": serializers.ChoiceField(choices=ExportBatch.Format.values),
        "status": serializers.ChoiceField(choices=ExportBatch.Status.values),
        "files": serializers.ListField(child=serializers.DictField(), help_text="name, sha256, bytes, lines, url"),
        "manifest_url": serializers.URLField(),
        "manifest": serializers.DictField(),
        "claim_id": serializers.UUIDField(required=False),
        "claim_expires_at": serializers.DateTimeField(required=False),
    },
)
ClaimBody = inline_serializer("TrainingClaimBody", {"claim_id": serializers.UUIDField()})
LeaseBody = inline_serializer(
    "TrainingLeaseBody", {"lease_seconds": serializers.IntegerField(required=False, min_value=60)}
)


def _lease_seconds(request: Request) -> int | None:
    raw = request.data.get("lease_seconds") if isinstance(request.data, dict) else None
    if raw is None:
        return None
    if not isinstance(raw, int) or isinstance(raw, bool) or not 60 <= raw <= MAX_LEASE_SECONDS:
        raise exceptions.ValidationError(f"lease_seconds must be an integer from 60 to {MAX_LEASE_SECONDS}")
    return raw


def _claim_id(request: Request) -> str:
    raw = request.data.get("claim_id") if isinstance(request.data, dict) else None
    if not isinstance(raw, str) or not raw:
        raise exceptions.ValidationError("claim_id is required")
    return raw


class ClaimView(_QueueView):
    @extend_schema(
        tags=["training queue"],
        request=LeaseBody,
        responses={200: BatchSchema, 204: OpenApiResponse(description="no batch is ready")},
        summary="Claim the oldest ready batch",
    )
    def post(self, request: Request) -> Response:
        batch = services.batch_claim(token=request.auth, lease_seconds=_lease_seconds(request))
        if batch is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        return Response(_batch_json(batch, request, with_claim=True))


def _batch(batch_id: int) -> ExportBatch:
    batch = ExportBatch.objects.filter(id=batch_id, status__in=_DOWNLOADABLE).first()
    if batch is None:
        raise exceptions.NotFound("no such batch, or not ready")
    return batch


class BatchView(_QueueView):
    @extend_schema(tags=["training queue"], responses={200: BatchSchema}, summary="A batch and its manifest")
    def get(self, request: Request, batch_id: int) -> Response:
        return Response(_batch_json(_batch(batch_id), request))


class BatchFileView(_QueueView):
    @extend_schema(
        tags=["training queue"], responses={(200, "application/octet-stream"): OpenApiTypes.BINARY}, summary="A file"
    )
    def get(self, request: Request, batch_id: int, name: str):
        batch = _batch(batch_id)
        # Only names the manifest lists: nothing else in (or outside) the folder can be asked for.
        if name != "manifest.json" and name not in (batch.manifest or {}).get("files", {}):
            raise exceptions.NotFound("no such file in this batch")
        path = Path(batch.path) / name
        if not path.is_file():
            raise exceptions.NotFound("the file is missing on the server")
        return FileResponse(
            open(path, "rb"),  # noqa: SIM115 - FileResponse closes it
            as_attachment=True,
            filename=name,
            content_type="application/json" if name.endswith(".json") else "application/x-ndjson",
        )


class _ClaimActionView(_QueueView):
    action_name = ""

    def act(self, request: Request, batch_id: int) -> ExportBatch:
        raise NotImplementedError

    def post(self, request: Request, batch_id: int) -> Response:
        try:
            batch = self.act(request, batch_id)
        except ExportBatch.DoesNotExist:
            raise exceptions.NotFound("no such batch") from None
        except services.ClaimError as exc:
            raise Conflict(str(exc)) from None
        return Response(_batch_json(batch, request, with_claim=batch.status == ExportBatch.Status.CLAIMED))


class AckView(_ClaimActionView):
    @extend_schema(tags=["training queue"], request=ClaimBody, responses={200: BatchSchema}, summary="Consumed")
    def post(self, request: Request, batch_id: int) -> Response:
        return super().post(request, batch_id)

    def act(self, request, batch_id):
        return services.batch_ack(batch_id=batch_id, claim_id=_claim_id(request))


class ReleaseView(_ClaimActionView):
    @extend_schema(tags=["training queue"], request=ClaimBody, responses={200: BatchSchema}, summary="Give back")
    def post(self, request: Request, batch_id: int) -> Response:
        return super().post(request, batch_id)

    def act(self, request, batch_id):
        return services.batch_release(batch_id=batch_id, claim_id=_claim_id(request))


class ExtendView(_ClaimActionView):
    @extend_schema(tags=["training queue"], request=ClaimBody, responses={200: BatchSchema}, summary="Hold longer")
    def post(self, request: Request, batch_id: int) -> Response:
        return super().post(request, batch_id)

    def act(self, request, batch_id):
        return services.batch_extend(
            batch_id=batch_id, claim_id=_claim_id(request), lease_seconds=_lease_seconds(request)
        )
