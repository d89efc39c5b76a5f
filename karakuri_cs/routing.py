from channels.auth import AuthMiddlewareStack
from django.urls import path

from apps.chat.consumers import ChatConsumer
from apps.console.consumers import OperatorConsumer

websocket_urlpatterns = [
    path("ws/chat/", ChatConsumer.as_asgi()),
    # Operators authenticate with their Django session cookie; customers with a conversation token instead.
    path("ws/console/", AuthMiddlewareStack(OperatorConsumer.as_asgi())),
]
