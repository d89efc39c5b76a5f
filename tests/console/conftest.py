"""Fixtures for the operator console: users in each role, conversations, sockets signed in with a session."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import Group, User
from django.test import Client

from apps.chat.models import Conversation, Message
from apps.chat.services import _message_append
from apps.console.roles import OPERATORS, SUPERVISORS
from apps.faq.services import faq_entries_upsert
from tests.conftest import SMALL_FAQ
from tests.websocket import TIMEOUT


@pytest.fixture
def faq_entries(transactional_db):
    """The same four entries, stored but not indexed (for tests that never search)."""
    faq_entries_upsert(rows=SMALL_FAQ, actor="test")
    return SMALL_FAQ


def user_in(role: str | None, username: str, password: str | None = None) -> User:
    # No password unless a test signs in through the form: hashing one costs half a second.
    user = User.objects.create_user(username=username, password=password)
    if role:
        user.groups.add(Group.objects.get(name=role))
    return user


@pytest.fixture
def operator(db):
    return user_in(OPERATORS, "operator1")


@pytest.fixture
def operator2(db):
    return user_in(OPERATORS, "operator2")


@pytest.fixture
def supervisor(db):
    return user_in(SUPERVISORS, "supervisor1")


@pytest.fixture
def outsider(db):
    """Signed in, even staff for the admin, but in no console role."""
    user = user_in(None, "outsider")
    user.is_staff = True
    user.save()
    return user


def conversation_with(
    *messages: tuple[str, str], status: str = Conversation.Status.BOT, channel: str = "http", **provenance
) -> Conversation:
    """A conversation holding (role, text) messages; bot messages reply to the customer message before them.

    The channel is `http` by default: a web conversation's reply stops when no customer socket is open."""
    from django.db import transaction
    from django.utils import timezone

    conversation = Conversation.objects.create(status=status, channel=channel)
    if status == Conversation.Status.WAITING_FOR_OPERATOR:
        conversation.waiting_since = timezone.now()
        conversation.save()
    last_customer = None
    with transaction.atomic():
        for role, text in messages:
            message = _message_append(
                conversation_id=conversation.id,
                role=role,
                text=text,
                in_reply_to=last_customer if role == Message.Role.BOT else None,
                provenance=provenance if role == Message.Role.BOT else None,
            )
            if role == Message.Role.CUSTOMER:
                last_customer = message
    return conversation


def logged_in_client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def console_socket():
    """Open /ws/console/ through the real ASGI application with `user`'s session cookie (None: anonymous).
    Returns (communicator, connected)."""
    from karakuri_cs.asgi import application

    opened: list[WebsocketCommunicator] = []

    async def connect(user=None, *, origin: bytes = b"http://127.0.0.1"):
        headers = [(b"origin", origin)]
        if user is not None:
            client = await database_sync_to_async(logged_in_client)(user)
            headers.append((b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode()))
        communicator = WebsocketCommunicator(application, "/ws/console/", headers=headers)
        connected, _ = await communicator.connect(timeout=TIMEOUT)
        opened.append(communicator)
        return communicator, connected

    yield connect
    for communicator in opened:
        communicator.future.cancel()
