"""How many customer sockets each conversation has open, so a reply nobody will read can stop.

Counted in Redis when there is one (generation runs in Celery workers, the sockets in web processes), else in
this process. Counts expire after a day, so a crashed web process cannot leave a conversation "present"
forever.
"""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from functools import cache

from django.conf import settings

_TTL_SECONDS = 86400
_local: Counter[str] = Counter()
_local_lock = threading.Lock()


@cache
def _redis():
    import redis

    return redis.Redis.from_url(settings.REDIS_URL)


def _key(conversation_id: uuid.UUID | str) -> str:
    return f"{settings.CHANNEL_LAYER_PREFIX}:presence:{conversation_id}"


def customer_connected(conversation_id: uuid.UUID | str) -> None:
    if settings.REDIS_URL:
        pipe = _redis().pipeline()
        pipe.incr(_key(conversation_id))
        pipe.expire(_key(conversation_id), _TTL_SECONDS)
        pipe.execute()
    else:
        with _local_lock:
            _local[str(conversation_id)] += 1


def customer_disconnected(conversation_id: uuid.UUID | str) -> None:
    if settings.REDIS_URL:
        if _redis().decr(_key(conversation_id)) <= 0:
            _redis().delete(_key(conversation_id))
    else:
        with _local_lock:
            _local[str(conversation_id)] -= 1
            if _local[str(conversation_id)] <= 0:
                del _local[str(conversation_id)]


def customer_sockets(conversation_id: uuid.UUID | str) -> int:
    if settings.REDIS_URL:
        return int(_redis().get(_key(conversation_id)) or 0)
    with _local_lock:
        return _local.get(str(conversation_id), 0)
