"""Supervisor pages, included at /console/training/."""

from django.urls import path

from apps.training import views

app_name = "training"

urlpatterns = [
    path("", views.index, name="index"),
    path("review/", views.review_page, name="review"),
    path("examples/", views.example_list_page, name="examples"),
    path("examples/<int:example_id>/", views.example_page, name="example"),
    path("batches/", views.batch_list_page, name="batches"),
    path("batches/<int:batch_id>/", views.batch_page, name="batch"),
    path("batches/<int:batch_id>/progress/", views.batch_progress, name="batch-progress"),
    path("batches/<int:batch_id>/retry/", views.batch_retry, name="batch-retry"),
    path("tokens/", views.token_list_page, name="tokens"),
    path("tokens/<int:token_id>/revoke/", views.token_revoke, name="token-revoke"),
]
