from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView

urlpatterns = [
    path("", RedirectView.as_view(url="/chat/", permanent=False)),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("", include("apps.chat.urls")),
    path("console/training/", include("apps.training.urls")),
    path("console/", include("apps.console.urls")),
    path("api/training/", include("apps.training.api_urls")),
]
