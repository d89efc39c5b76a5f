"""The customer chat over plain HTTP, for clients without WebSocket. Same services as the socket.

The conversation token goes in the `Authorization: Bearer <token>` header. Errors are JSON:
`{"error": {"code": ..., "message": ...}}` with the same codes as the socket's `error` event.
"""

from __future__ import annotations

import time
import uuid

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import exceptions, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework.views import exception_handler as drf_exception_handler

from apps.chat import events, selectors, services
from apps.chat.errors import ChatError, invalid_field
from apps.chat.models import Message
from apps.chat.texts_ja import ERRORS
from apps.chat.tokens import conversation_id_from_token, conversation_token_for

MAX_WAIT_SECONDS = 30


def exception_handler(exc, context):
    if isinstance(exc, ChatError):
        return Response({"error": {"code": exc.code, "message": exc.message}}, status=exc.http_status)
    response = drf_exception_handler(exc, context)
    if response is not None:
        code = "invalid_json" if isinstance(exc, exceptions.ParseError) else getattr(exc, "default_code", "error")
        message = ERRORS.get(code, ERRORS["invalid_field"])
        response.data = {"error": {"code": code, "message": message, "detail": response.data}}
    return response


def _conversation_id(request: Request) -> uuid.UUID:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise ChatError("invalid_token", http_status=401)
    conversation_id = conversation_id_from_token(token.strip())
    if not services.Conversation.objects.filter(id=conversation_id).exists():
        raise ChatError("invalid_token", http_status=401)
    return conversation_id


def _body(request: Request) -> dict:
    try:
        data = request.data
    except RecursionError:  # a body nested thousands deep; the JSON parser only turns ValueError into a 400
        raise ChatError("invalid_json") from None
    if not isinstance(data, dict):
        raise ChatError("invalid_json")
    return data


MessageSchema = inline_serializer(
    "Message",
    {
        "seq": serializers.IntegerField(),
        "role": serializers.ChoiceField(choices=Message.Role.values),
        "text": serializers.CharField(help_text="Plain text; render as text, never as HTML."),
        "created_at": serializers.DateTimeField(),
        "client_msg_id": serializers.CharField(allow_null=True),
        "in_reply_to_seq": serializers.IntegerField(allow_null=True),
        "feedback": serializers.IntegerField(allow_null=True, required=False),
        "faq": serializers.ListField(child=serializers.DictField(), required=False),
    },
)
ErrorSchema = inline_serializer(
    "Error",
    {"error": inline_serializer("ErrorBody", {"code": serializers.CharField(), "message": serializers.CharField()})},
)
AUTH = OpenApiParameter(
    "Authorization", OpenApiTypes.STR, OpenApiParameter.HEADER, required=True, description="Bearer <conversation token>"
)


class ConversationCreateView(APIView):
    @extend_schema(
        request=None,
        responses={
            201: inline_serializer(
                "ConversationCreated",
                {
                    "conversation_id": serializers.UUIDField(),
                    "token": serializers.CharField(),
                    "status": serializers.CharField(),
                    "last_seq": serializers.IntegerField(),
                },
            )
        },
        summary="Start a conversation",
    )
    def post(self, request: Request) -> Response:
        conversation = services.conversation_create(channel="http", client=request.META.get("REMOTE_ADDR", ""))
        return Response(
            {
                "conversation_id": str(conversation.id),
                "token": conversation_token_for(conversation.id),
                "status": conversation.status,
                "last_seq": conversation.last_seq,
            },
            status=status.HTTP_201_CREATED,
        )


class MessagesView(APIView):
    @extend_schema(
        parameters=[AUTH, OpenApiParameter("after_seq", int, description="Only messages after this seq")],
        responses={
            200: inline_serializer(
                "MessageList",
                {"status": serializers.CharField(), "last_seq": serializers.IntegerField(), "messages": MessageSchema},
            ),
            401: ErrorSchema,
        },
        summary="List a conversation's messages",
    )
    def get(self, request: Request) -> Response:
        conversation_id = _conversation_id(request)
        raw = request.query_params.get("after_seq", "0")
        if not raw.isdigit():
            raise invalid_field("after_seq must be a non-negative integer")
        messages = selectors.conversation_messages_after(conversation_id=conversation_id, after_seq=int(raw))
        conversation = selectors.conversation_get(conversation_id=conversation_id)
        return Response(
            {
                "status": conversation.status,
                "last_seq": conversation.last_seq,
                "messages": [events.message_payload(m) for m in messages],
            }
        )

    @extend_schema(
        parameters=[
            AUTH,
            OpenApiParameter(
                "wait", int, description=f"Seconds (≤ {MAX_WAIT_SECONDS}) to wait for the bot's reply before answering"
            ),
        ],
        request=inline_serializer(
            "MessageSend", {"text": serializers.CharField(), "client_msg_id": serializers.CharField(required=False)}
        ),
        responses={
            201: inline_serializer("MessageStored", {"message": MessageSchema, "reply": MessageSchema}),
            200: inline_serializer("MessageAlreadyStored", {"message": MessageSchema}),
            400: ErrorSchema,
            401: ErrorSchema,
            409: ErrorSchema,
            413: ErrorSchema,
            429: ErrorSchema,
        },
        summary="Send a customer message",
    )
    def post(self, request: Request) -> Response:
        conversation_id = _conversation_id(request)
        body = _body(request)
        raw_wait = request.query_params.get("wait", "0")
        if not raw_wait.isdigit():
            raise invalid_field("wait must be a non-negative integer")
        message, created = services.customer_message_receive(
            conversation_id=conversation_id, text=body.get("text"), client_msg_id=body.get("client_msg_id")
        )
        data: dict = {"message": events.message_payload(message)}
        wait = min(int(raw_wait), MAX_WAIT_SECONDS)
        if created and wait:
            reply = _reply_wait(message, timeout=wait)
            data["reply"] = events.message_payload(reply) if reply else None
        return Response(data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


def _reply_wait(message: Message, *, timeout: float) -> Message | None:
    deadline = time.monotonic() + timeout
    while True:
        reply = Message.objects.filter(in_reply_to=message, role=Message.Role.BOT).first()
        if reply is not None or time.monotonic() >= deadline:
            return reply
        if not selectors.conversation_get(conversation_id=message.conversation_id).bot_answers:
            return None
        time.sleep(0.05)


class FeedbackView(APIView):
    @extend_schema(
        parameters=[AUTH],
        request=inline_serializer(
            "FeedbackSet",
            {"seq": serializers.IntegerField(), "value": serializers.ChoiceField(choices=[1, -1], allow_null=True)},
        ),
        responses={
            200: inline_serializer(
                "FeedbackStored",
                {"seq": serializers.IntegerField(), "value": serializers.IntegerField(allow_null=True)},
            ),
            404: ErrorSchema,
        },
        summary="Thumbs up or down on a bot reply",
    )
    def post(self, request: Request) -> Response:
        conversation_id = _conversation_id(request)
        body = _body(request)
        message = services.message_feedback_set(
            conversation_id=conversation_id, seq=body.get("seq"), value=body.get("value")
        )
        return Response({"seq": message.seq, "value": message.feedback})


class OperatorRequestView(APIView):
    @extend_schema(
        parameters=[AUTH],
        request=None,
        responses={200: inline_serializer("ConversationStatus", {"status": serializers.CharField()})},
        summary="Ask for a person; the bot stays silent from now on",
    )
    def post(self, request: Request) -> Response:
        conversation = services.conversation_request_operator(conversation_id=_conversation_id(request))
        return Response({"status": conversation.status})
