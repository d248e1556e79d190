"""Settings come from the environment so one code base serves a laptop demo and a PostgreSQL deployment.

JUROR_ENV=production switches on the production checks (no default secret key, secure cookies, HSTS);
DATABASE_URL picks the database (default: SQLite in WAL mode under the data directory);
JUROR_DATA_DIR is where models, adapters, exports and checkpoints live.
"""

import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


JUROR_ENV = os.environ.get("JUROR_ENV", "development")
PRODUCTION = JUROR_ENV == "production"
DEBUG = env_bool("DEBUG", False)

_DEFAULT_SECRET = "dev-insecure-secret-key-do-not-use-in-production"  # noqa: S105 (refused in production)
SECRET_KEY = os.environ.get("SECRET_KEY", _DEFAULT_SECRET)
if PRODUCTION and (SECRET_KEY == _DEFAULT_SECRET or len(SECRET_KEY) < 50):
    raise ImproperlyConfigured("JUROR_ENV=production needs SECRET_KEY set to a random string of 50+ characters")
if PRODUCTION and DEBUG:
    raise ImproperlyConfigured("DEBUG must be off when JUROR_ENV=production")

ALLOWED_HOSTS = [h for h in os.environ.get("ALLOWED_HOSTS", "127.0.0.1,localhost,testserver").split(",") if h]
CSRF_TRUSTED_ORIGINS = [o for o in os.environ.get("CSRF_TRUSTED_ORIGINS", "").split(",") if o]

JUROR_DATA_DIR = Path(os.environ.get("JUROR_DATA_DIR", BASE_DIR / "var")).resolve()

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "template_partials",
    "csp",
    "axes",
    "annotators",
    "feedback",
    "training",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Before anything looks a value up: a NUL in the path, query or form is a 400, not a PostgreSQL 500.
    "config.inputs.RejectNulMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Last, as django-axes asks: it turns a locked-out login into a 429 page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

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
                "training.context_processors.nav",
            ],
        },
    }
]


def _database() -> dict:
    url = os.environ.get("DATABASE_URL") or f"sqlite:///{JUROR_DATA_DIR / 'juror.sqlite3'}"
    # Persistent connections: opening one (and, on SQLite, setting its PRAGMAs) costs more than a request.
    db = dj_database_url.parse(url, conn_max_age=int(os.environ.get("CONN_MAX_AGE", "60")), conn_health_checks=True)
    if db["ENGINE"] == "django.db.backends.sqlite3":
        Path(db["NAME"]).parent.mkdir(parents=True, exist_ok=True) if db["NAME"] != ":memory:" else None
        # WAL lets readers work while one writer writes; IMMEDIATE takes the write lock at BEGIN so two
        # writers queue on busy_timeout instead of failing with "database is locked" mid-transaction.
        db["OPTIONS"] = {
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;",
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
        }
        db.setdefault("TEST", {})["NAME"] = os.environ.get("SQLITE_TEST_NAME") or None
    elif db["ENGINE"] == "django.db.backends.postgresql":
        # Server-side binding lets psycopg prepare the hot queries (claim, label) once per connection
        # instead of PostgreSQL planning them on every request.
        db.setdefault("OPTIONS", {})["server_side_binding"] = env_bool("PG_SERVER_SIDE_BINDING", True)
    return db


DATABASES = {"default": _database()}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = JUROR_DATA_DIR / "staticfiles"
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
# Without collectstatic in development, WhiteNoise serves straight from the finders.
WHITENOISE_USE_FINDERS = not PRODUCTION

# Login is rate limited (django-axes): after 10 failures for one username from one address, that pair is
# locked out for 15 minutes; a success resets the count. Token-authenticated API calls are not affected.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
AXES_FAILURE_LIMIT = int(os.environ.get("AXES_FAILURE_LIMIT", "10"))
AXES_COOLOFF_TIME = 0.25  # hours
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_VERBOSE = False

LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/accounts/login/"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    # config/inputs.py: the JSON parser refuses deep nesting, NUL and oversized bodies; ?limit= is capped.
    "DEFAULT_PARSER_CLASSES": [
        "config.inputs.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_PAGINATION_CLASS": "config.inputs.Pagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "config.api_errors.exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Juror API",
    "DESCRIPTION": "Human feedback on language models: projects, imports, annotation, exports, training jobs.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    # The docs page loads Swagger UI from our own static files, never a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    "ENUM_NAME_OVERRIDES": {"ProjectOptionModeEnum": "feedback.models.Project.Mode"},
}

# Content-Security-Policy: no inline or eval'd scripts anywhere; untrusted model text can never run.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "font-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}

# Import limits: a gzip bomb or a runaway file stops at these, with a message naming the limit.
JUROR_IMPORT_MAX_BYTES = int(os.environ.get("JUROR_IMPORT_MAX_BYTES", str(512 * 1024 * 1024)))
JUROR_IMPORT_MAX_ROWS = int(os.environ.get("JUROR_IMPORT_MAX_ROWS", "2000000"))
# Uploads (site and API) larger than this, counted unpacked, are stored under the data directory and imported by
# an `import` job; smaller ones are imported in the request.
JUROR_IMPORT_SYNC_MAX_BYTES = int(os.environ.get("JUROR_IMPORT_SYNC_MAX_BYTES", str(2 * 1024 * 1024)))
# One line (one CSV row, one JSONL object) at most; lines are read in bounded pieces, never whole.
JUROR_IMPORT_MAX_LINE_BYTES = int(os.environ.get("JUROR_IMPORT_MAX_LINE_BYTES", str(16 * 1024 * 1024)))
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024

# Jobs and workers (training/worker.py). A worker heartbeats every HEARTBEAT seconds and holds a job for LEASE
# seconds past its last heartbeat; after that any worker may take the job over (the next attempt).
JUROR_JOB_LEASE_SECONDS = float(os.environ.get("JUROR_JOB_LEASE_SECONDS", "60"))
JUROR_JOB_HEARTBEAT_SECONDS = float(os.environ.get("JUROR_JOB_HEARTBEAT_SECONDS", "5"))
JUROR_JOB_MAX_ATTEMPTS = int(os.environ.get("JUROR_JOB_MAX_ATTEMPTS", "3"))
JUROR_JOB_RETRY_DELAY_SECONDS = float(os.environ.get("JUROR_JOB_RETRY_DELAY_SECONDS", "10"))
JUROR_WORKER_POLL_SECONDS = float(os.environ.get("JUROR_WORKER_POLL_SECONDS", "2"))
JUROR_WORKER_STOP_GRACE_SECONDS = float(os.environ.get("JUROR_WORKER_STOP_GRACE_SECONDS", "60"))
# "auto": jobs that can use several GPUs start through `accelerate launch` when nvidia-smi lists more than one;
# "python" never; "accelerate" always, with JUROR_ACCELERATE_ARGS (e.g. "--multi_gpu --num_processes 4").
JUROR_WORKER_LAUNCHER = os.environ.get("JUROR_WORKER_LAUNCHER", "auto")
JUROR_ACCELERATE_ARGS = os.environ.get("JUROR_ACCELERATE_ARGS", "")
if JUROR_JOB_LEASE_SECONDS <= 3 * JUROR_JOB_HEARTBEAT_SECONDS:
    # A worker gives up its child when heartbeats fail for lease − 2 × heartbeat seconds; below that margin one
    # slow heartbeat would hand a healthy job to a second worker.
    raise ImproperlyConfigured("JUROR_JOB_LEASE_SECONDS must be more than 3 × JUROR_JOB_HEARTBEAT_SECONDS")
if JUROR_WORKER_LAUNCHER not in ("auto", "python", "accelerate"):
    raise ImproperlyConfigured("JUROR_WORKER_LAUNCHER must be auto, python or accelerate")

SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
if PRODUCTION:
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = int(os.environ.get("SECURE_HSTS_SECONDS", "31536000"))
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "WARNING")},
}
