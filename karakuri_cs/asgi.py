"""ASGI entry point: HTTP through Django, WebSocket through Channels."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "karakuri_cs.settings")

# Django must be set up before the consumers (and through them the models) are imported.
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from apps.chat.dispatch import remember_event_loop  # noqa: E402
from karakuri_cs.routing import websocket_urlpatterns  # noqa: E402

application = remember_event_loop(
    ProtocolTypeRouter(
        {
            "http": django_asgi_app,
            # The embeddable widget is an iframe served from this host, so sockets always come from an origin
            # in ALLOWED_HOSTS; the conversation token, not a cookie, is the customer's credential.
            "websocket": AllowedHostsOriginValidator(URLRouter(websocket_urlpatterns)),
        }
    )
)

from django.conf import settings  # noqa: E402

if settings.REPLY_EXECUTION == "inprocess":
    # This process answers customers itself (the embedded default): load the search models before serving, not
    # in the first customer's turn, where loading PyTorch (~3 s, mostly imports holding the GIL) also stalls the
    # event loop that carries every other conversation's events.
    from apps.faq.search import search_warm_up  # noqa: E402

    search_warm_up()
