from django.contrib.auth import views as auth_views
from django.urls import path

from apps.console import views

app_name = "console"

urlpatterns = [
    path(
        "login/",
        auth_views.LoginView.as_view(template_name="console/login.html", redirect_authenticated_user=True),
        name="login",
    ),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("", views.queue_page, name="queue"),
    path("conversations/<uuid:conversation_id>/", views.conversation_page, name="conversation"),
    path(
        "conversations/<uuid:conversation_id>/messages/<int:seq>/correct/",
        views.correction_page,
        name="correct",
    ),
    path("gaps/", views.gaps_page, name="gaps"),
    path("canned/", views.canned_list_page, name="canned"),
    path("canned/<int:pk>/", views.canned_edit_page, name="canned-edit"),
    path("canned/<int:pk>/delete/", views.canned_delete, name="canned-delete"),
    path("audit/", views.audit_page, name="audit"),
    path("api/queue/", views.queue_api, name="api-queue"),
    path("api/conversations/<uuid:conversation_id>/", views.conversation_api, name="api-conversation"),
]
