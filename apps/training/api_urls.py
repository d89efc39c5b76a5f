"""The batch queue API for the fine-tuning pipeline, included at /api/training/ (see apps.training.api)."""

from django.urls import path

from apps.training import api

app_name = "training-api"

urlpatterns = [
    path("batches/claim/", api.ClaimView.as_view(), name="claim"),
    path("batches/<int:batch_id>/", api.BatchView.as_view(), name="batch"),
    path("batches/<int:batch_id>/files/<str:name>", api.BatchFileView.as_view(), name="batch-file"),
    path("batches/<int:batch_id>/ack/", api.AckView.as_view(), name="ack"),
    path("batches/<int:batch_id>/release/", api.ReleaseView.as_view(), name="release"),
    path("batches/<int:batch_id>/extend/", api.ExtendView.as_view(), name="extend"),
]
