"""Lifecycle settings: one module, every deployment-specific value read from the environment.

``LIFECYCLE_ENV=production`` switches on the hardened mode (``manage.py check --deploy``
reports nothing); the default ``development`` mode needs no variables at all and runs on an
SQLite file and Celery's filesystem broker inside the project folder.
See ``.env.example`` for every variable.
"""

from __future__ import annotations

from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from lifecycle.env import (
    database_from_url,
    env_bool,
    env_int,
    env_int_renamed,
    env_list,
    env_str,
    sqlite_database,
)

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"  # local state of the embedded default (database, broker folders)

LIFECYCLE_ENV = env_str("LIFECYCLE_ENV", "development")
if LIFECYCLE_ENV not in {"development", "production"}:
    raise ImproperlyConfigured("LIFECYCLE_ENV must be 'development' or 'production'.")
PRODUCTION = LIFECYCLE_ENV == "production"

if PRODUCTION:
    SECRET_KEY = env_str("SECRET_KEY")
else:
    # Development only: a fixed, obviously-insecure key so sessions survive restarts.
    SECRET_KEY = env_str("SECRET_KEY", "dev-insecure-key-do-not-use-in-production-0123456789abcdef")
DEBUG = env_bool("DEBUG", not PRODUCTION)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", [] if PRODUCTION else ["127.0.0.1", "localhost", "[::1]"])
if PRODUCTION and not ALLOWED_HOSTS:
    raise ImproperlyConfigured("Set ALLOWED_HOSTS (comma-separated) in production.")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "customers",
    "campaigns",
    "tracking",
    "api",
    "segments",
    "success",
    "audit",
    "imports",
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
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
]

ROOT_URLCONF = "lifecycle.urls"
WSGI_APPLICATION = "lifecycle.wsgi.application"
ASGI_APPLICATION = "lifecycle.asgi.application"

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
                "customers.roles.roles_context",
            ],
        },
    },
]

_database_url = env_str("DATABASE_URL", "")
DATABASES = {
    "default": (
        database_from_url(_database_url, base_dir=BASE_DIR)
        if _database_url
        else sqlite_database(VAR_DIR / "lifecycle.sqlite3")
    )
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "staticfiles"
if not PRODUCTION:
    STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # WhiteNoise warns when it is missing
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "whitenoise.storage.CompressedManifestStaticFilesStorage"
            if PRODUCTION
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(VAR_DIR / "media")))

# --- Ingest time rules (REST API, tracking API, CSV import) -----------------------------------
# Events stamped further than this ahead of the server's clock (after the tracking API's
# clock-skew correction; for CSV, ahead of the import's start) are rejected. One setting for
# every ingest path; the three older names still count while it is unset (deprecated).
MAX_FUTURE_SKEW_SECONDS = env_int_renamed(
    "MAX_FUTURE_SKEW_SECONDS",
    ("API_MAX_FUTURE_SKEW_SECONDS", "TRACKING_FUTURE_SKEW_SECONDS", "IMPORT_FUTURE_SKEW_SECONDS"),
    300,
)

# --- CSV import ------------------------------------------------------------------------------
# Largest file the upload screen accepts (the management command has no limit).
IMPORT_MAX_UPLOAD_MB = env_int("IMPORT_MAX_UPLOAD_MB", 1024)

# --- Email -----------------------------------------------------------------------------------
EMAIL_BACKEND = env_str(
    "EMAIL_BACKEND",
    "django.core.mail.backends.smtp.EmailBackend"
    if PRODUCTION
    else "django.core.mail.backends.console.EmailBackend",
)
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", False)
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 30)
# Where the file-based backend (a local sink for tests and demos) writes messages.
EMAIL_FILE_PATH = env_str("EMAIL_FILE_PATH", str(BASE_DIR / "var" / "mail"))
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "Lifecycle <lifecycle@localhost>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL

# --- Re-engagement plans ----------------------------------------------------------------------
# Absolute links in plan emails (unsubscribe, survey) start with this.
SITE_URL = env_str("SITE_URL", "http://127.0.0.1:8000").rstrip("/")
# HMAC-SHA256 key for webhook signatures when a step sets no secret of its own.
CAMPAIGNS_WEBHOOK_SECRET = env_str("CAMPAIGNS_WEBHOOK_SECRET", "") or SECRET_KEY
CAMPAIGNS_WEBHOOK_TIMEOUT = env_int("CAMPAIGNS_WEBHOOK_TIMEOUT", 10)
# A transient failure is retried with exponential backoff up to this many attempts in all.
CAMPAIGNS_MAX_ATTEMPTS = env_int("CAMPAIGNS_MAX_ATTEMPTS", 6)
CAMPAIGNS_RETRY_BASE_SECONDS = env_int("CAMPAIGNS_RETRY_BASE_SECONDS", 60)
# How long a dispatch worker owns the rows it claimed; after that another worker may retry.
CAMPAIGNS_LEASE_SECONDS = env_int("CAMPAIGNS_LEASE_SECONDS", 300)

# --- Celery ----------------------------------------------------------------------------------
# Default: kombu's filesystem transport in var/broker — a broker that needs no server process.
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "filesystem://")
_BROKER_DIR = VAR_DIR / "broker"
if CELERY_BROKER_URL.startswith("filesystem://"):
    for _folder in ("out", "control", "processed", "results"):
        (_BROKER_DIR / _folder).mkdir(parents=True, exist_ok=True)  # a fresh clone has none
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_BROKER_DIR / "out"),
        "data_folder_out": str(_BROKER_DIR / "out"),
        "control_folder": str(_BROKER_DIR / "control"),
        "processed_folder": str(_BROKER_DIR / "processed"),
        "store_processed": False,
    }
    _default_result_backend = f"file://{_BROKER_DIR / 'results'}"
elif CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
    _default_result_backend = CELERY_BROKER_URL
else:
    _default_result_backend = ""
CELERY_RESULT_BACKEND = env_str("CELERY_RESULT_BACKEND", _default_result_backend) or None
CELERY_RESULT_EXPIRES = 3600
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_TIMEZONE = TIME_ZONE
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# --- REST framework --------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"]
    + (["rest_framework.renderers.BrowsableAPIRenderer"] if DEBUG else []),
    # Per token (or staff user); "<n>/<second|minute|hour|day>".
    "DEFAULT_THROTTLE_RATES": {
        "api_read": env_str("API_THROTTLE_READ", "1200/min"),
        "api_write": env_str("API_THROTTLE_WRITE", "600/min"),
        "api_bulk": env_str("API_THROTTLE_BULK", "3000/min"),
    },
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Lifecycle API",
    "DESCRIPTION": "Customers, touchpoints and touchpoint types; bulk touchpoint ingest. "
    "Authenticate with an API token ('Authorization: Bearer lc_…') or a staff session.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "COMPONENT_SPLIT_REQUEST": True,
    "SWAGGER_UI_DIST": "SIDECAR",  # served from our static files, no CDN
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}
# Largest bulk request body; 10,000 items with small properties fit in ~3 MB.
API_BULK_MAX_BODY_BYTES = env_int("API_BULK_MAX_BODY_BYTES", 20 * 1024 * 1024)

# --- Security --------------------------------------------------------------------------------
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False  # htmx reads the token from the page, not the cookie
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
if PRODUCTION:
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 60 * 60 * 24 * 365)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
    SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", True)
    if env_bool("SECURE_PROXY_SSL_HEADER", False):
        # Only behind a proxy that strips this header from client requests.
        SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
