"""Handoff settings. Production differs from development only by environment variables (README: Configuration)."""

import datetime as dt
from pathlib import Path

import dj_database_url
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured
from kombu import Exchange, Queue

from config.env import env_bool, env_choice, env_fernet_keys, env_float, env_int, env_list, env_networks, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"
VAR_DIR.mkdir(exist_ok=True)

DEBUG = env_bool("DJANGO_DEBUG", default=False)
# Development gets a throwaway key; anything else must be given one.
SECRET_KEY = env_str("DJANGO_SECRET_KEY", "dev-only-insecure-key-do-not-deploy" if DEBUG else None)
# Not a secret: it only lets a development database be read back (README: Configuration).
_DEV_SECRETS_KEY = "ZGV2LW9ubHktaW5zZWN1cmUta2V5LWRvLW5vdC11c2U="
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]" if DEBUG else "")
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "django_htmx",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "simple_history",
    "axes",
    "csp",
    "routing",
    "exceptions",
    "audit",
]

MIDDLEWARE = [
    # First: the probes answer whatever the Host (a load balancer asks by IP address); see its docstring.
    "config.middleware.AnswerProbesMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "config.middleware.RefuseNulMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "simple_history.middleware.HistoryRequestMiddleware",
    # Last, as django-axes asks: it turns a lockout flagged during the request into the lockout answer.
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
                "exceptions.context_processors.console",
            ],
        },
    },
]

# Default: a SQLite file under var/, so the console runs on a machine with Python alone.
DATABASE_URL = env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'handoff.sqlite3'}")
# Least privilege (docs/security.md, 4): the application connects with DATABASE_URL, a role that may only read
# and write rows; the role that owns the schema, DATABASE_MIGRATE_URL, is used only by `manage.py migrate`
# (manage.py sets HANDOFF_DATABASE_AS_OWNER for it) and by the test harness. Without it, one role does both.
DATABASE_MIGRATE_URL = env_str("DATABASE_MIGRATE_URL", "")
_app_database = dj_database_url.parse(DATABASE_URL)
_owner_database = dj_database_url.parse(DATABASE_MIGRATE_URL) if DATABASE_MIGRATE_URL else None
if _owner_database and (_owner_database["ENGINE"], _owner_database["NAME"]) != (
    _app_database["ENGINE"],
    _app_database["NAME"],
):
    raise ImproperlyConfigured("DATABASE_MIGRATE_URL must name the same database as DATABASE_URL, as its owner role.")
# The owner's credentials, and the role the owner grants row access to after every migrate (audit/db_roles.py).
HANDOFF_DATABASE_OWNER = (
    {key: _owner_database[key] for key in ("USER", "PASSWORD", "HOST", "PORT")} if _owner_database else None
)
HANDOFF_DATABASE_APP_ROLE = _app_database["USER"] if _owner_database else None
DATABASES = {
    "default": dj_database_url.parse(
        DATABASE_MIGRATE_URL if _owner_database and env_bool("HANDOFF_DATABASE_AS_OWNER") else DATABASE_URL,
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Web, worker and beat share the file: WAL lets readers run beside one writer, IMMEDIATE takes the
    # write lock up front so concurrent transactions queue instead of failing with "database is locked".
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
    }
    DATABASES["default"]["CONN_MAX_AGE"] = 0

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

STATIC_URL = "static/"
STATIC_ROOT = Path(env_str("DJANGO_STATIC_ROOT", str(BASE_DIR / "staticfiles")))
STATIC_ROOT.mkdir(exist_ok=True)  # whitenoise scans it at start-up; collectstatic fills it
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = DEBUG

# Sign-in (docs/security.md, finding 3). django-axes' backend comes first: it refuses a locked-out client
# before any password is checked. Failures are counted per (username, client address): one address cannot
# guess one account's password, and nobody elsewhere can lock a person out by typing their name.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env_int("HANDOFF_LOGIN_FAILURE_LIMIT", 5)
# A lockout lifts by itself after this long; a failure while locked out starts it again.
AXES_COOLOFF_TIME = dt.timedelta(minutes=env_float("HANDOFF_LOGIN_LOCKOUT_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "config.signin.client_address"
AXES_LOCKOUT_CALLABLE = "config.signin.lockout_response"
# Failed sign-ins are logged with the username and address tried (never the password): that is what an
# operator needs to see an attack. axes masks both by default; the form's CSRF token is masked in what it stores.
AXES_SENSITIVE_PARAMETERS = ["csrfmiddlewaretoken"]
# Reverse proxies in front of the web process (README: Behind a reverse proxy). 0: clients connect directly,
# so X-Forwarded-* headers are the client's own words and are ignored. N: the N-th proxy from here appended
# the client's address to X-Forwarded-For and set X-Forwarded-Proto, overwriting what the client sent.
HANDOFF_PROXY_COUNT = env_int("HANDOFF_PROXY_COUNT", 0)

# A signed-in session lasts this long (default 8 hours, a working day; Django's default is two weeks).
SESSION_COOKIE_AGE = env_int("DJANGO_SESSION_COOKIE_AGE", 8 * 3600)

# Content-Security-Policy on every response (django-csp): scripts, styles, images and fetches from this site
# only, no inline script or style attribute, no framing, forms post here only.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "frame-ancestors": ["'none'"],
        "form-action": ["'self'"],
    }
}

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "console:overview"
LOGOUT_REDIRECT_URL = "login"

# Request size: the batch endpoint is the largest legitimate body; each endpoint checks its own limit.
DATA_UPLOAD_MAX_MEMORY_SIZE = 8 * 1024 * 1024

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "routing.api.auth.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["routing.api.parsers.BoundedJSONParser"],  # nesting capped (issue 15, finding 8)
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
    # The services' domain errors (conflict, refused action, blocked promotion …) → documented 400/409 bodies.
    "EXCEPTION_HANDLER": "routing.api.errors.api_exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Handoff API",
    "DESCRIPTION": "Lead intake for capture systems; leads, exception items, incidents, rules and accounts for "
    "console people. Every path ends in a slash, as clients call it.",
    "VERSION": "1.0.0",
    # The intake schema comes from pydantic, which writes JSON Schema 2020-12 (null as a type): OpenAPI 3.1.
    "OAS_VERSION": "3.1.0",
    # Relative: the API lives on the host that serves this document (OpenAPI 3.1, Server Object `url`).
    "SERVERS": [{"url": "/", "description": "The host serving this document"}],
    # No open-source license: the API is the deploying organisation's own.
    "LICENSE": {"name": "Proprietary", "identifier": "LicenseRef-Proprietary"},
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # One name for the resolution codes, whichever field carries them (resolve's `resolution`, bulk's `code`).
    "ENUM_NAME_OVERRIDES": {
        "ResolutionEnum": "exceptions.models.Resolution",
        "ExceptionStatusEnum": "exceptions.models.ExceptionStatus",  # items and incidents share it
        "DiffLineKindEnum": "routing.governance.diffs.DiffKind",
        "ExperimentStatusEnum": "routing.experiments.models.ExperimentStatus",
    },
    # Documents the 400/401/403/404/415 every endpoint can answer, with DRF's error bodies.
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "routing.api.schema.document_error_responses",
        # Summaries, hand-read query parameters, null as a type (3.1 has no `nullable`), required list bodies.
        "routing.api.schema.complete_for_openapi_31",
    ],
}

# Celery. Default broker: kombu's filesystem transport under var/, which needs no server.
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "filesystem://")
if CELERY_BROKER_URL.startswith("filesystem://"):
    _broker_dir = VAR_DIR / "broker"
    (_broker_dir / "processed").mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir),
        "data_folder_out": str(_broker_dir),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
else:
    # Measured here: the visibility timeout must outlive the longest task plus its longest retry countdown,
    # and a short restore interval brings back tasks of a killed worker node in seconds, not minutes.
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 900),
        "unacked_restore_interval": 5,
        "unacked_restore_throttle": 5,
    }
CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_BACKEND = None
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Celery closes the database connection around every task unless this is set; config/celery.py recycles it
# as Django does per request instead (measured: 1 new PostgreSQL session per lead, and one worker could not
# keep up with 50 leads/s; with reuse, 13 ms median conversion to assignment).
CELERY_DB_REUSE_MAX = 1_000_000
CELERY_TASK_TIME_LIMIT = 120
CELERY_TASK_SOFT_TIME_LIMIT = 100
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_DEFAULT_QUEUE = env_str("CELERY_TASK_DEFAULT_QUEUE", "handoff")
# Lanes (README: Workers). Routing of leads posted one by one (live) never waits behind an import (bulk), and
# routing never shares a queue with calls out of the product (enrichment, deliveries: a slow or dead vendor
# holds only its own lane) or rule replays. The default queue keeps beat's housekeeping. A worker started
# without -Q consumes every queue (the tests); the demo and production give routing and the edges workers of
# their own.
HANDOFF_QUEUES = {
    lane: f"{CELERY_TASK_DEFAULT_QUEUE}-{lane}" for lane in ("live", "bulk", "enrichment", "deliveries", "replays")
}
CELERY_TASK_QUEUES = [
    Queue(name, Exchange(name), routing_key=name) for name in (CELERY_TASK_DEFAULT_QUEUE, *HANDOFF_QUEUES.values())
]
CELERY_TASK_ROUTES = {
    "routing.integrations.tasks.enrich_leads": {"queue": HANDOFF_QUEUES["enrichment"]},
    "routing.integrations.tasks.deliver_events": {"queue": HANDOFF_QUEUES["deliveries"]},
    "exceptions.alert_tasks.send_alerts": {"queue": HANDOFF_QUEUES["deliveries"]},  # PagerDuty, Slack, webhooks
    "routing.governance.tasks.replay_rules_task": {"queue": HANDOFF_QUEUES["replays"]},
}
# Publishing while the broker is down must fail fast: the lead is already committed and the sweeper
# re-queues it; an intake request should not hang on retries.
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.1}
CELERY_BROKER_CONNECTION_TIMEOUT = 2
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
# Task names are routing.dispatch.TaskName's (tests/test_architecture.py checks each is registered).
CELERY_BEAT_SCHEDULE = {
    "requeue-stuck-leads": {
        "task": "routing.tasks.requeue_stuck_leads",
        "schedule": env_int("HANDOFF_REQUEUE_EVERY_SECONDS", 30),
    },
    "sla-sweep": {"task": "exceptions.tasks.sla_sweep_task", "schedule": 60.0},
    # Leads still unassigned past their rule's SLA (or the routing SLO) get an item; assigned ones close theirs.
    "routing-sla-sweep": {"task": "exceptions.tasks.routing_sla_sweep_task", "schedule": 60.0},
    # Leads held because everyone in their queue was away: routed once the first member's hours start.
    "release-waiting-leads": {"task": "routing.availability.tasks.release_waiting_leads_task", "schedule": 60.0},
    # People's time-off calendar feeds, read again (all-day busy events = away).
    "refresh-time-off-feeds": {"task": "routing.availability.tasks.refresh_time_off_feeds_task", "schedule": 3600.0},
    # Rejected posts beyond each source's bound or age (README: Rejected posts); their daily counts stay.
    "trim-rejected-posts": {"task": "routing.capture.tasks.trim_rejected_posts_task", "schedule": 600.0},
    # Open leads per person (caps, least-loaded): the changes recorded since the last fold become one row each.
    "fold-open-lead-counts": {"task": "routing.tasks.fold_open_lead_counts", "schedule": 300.0},
    "send-notifications": {"task": "exceptions.tasks.send_notifications_task", "schedule": 60.0},
    # Owner notices whose mail a lost task or a mail server outage left unsent.
    "send-rule-notices": {"task": "routing.governance.tasks.send_rule_notices_task", "schedule": 60.0},
    # Running experiments whose end time has passed end (their lead count ends them as leads are routed).
    "end-due-experiments": {"task": "routing.experiments.tasks.end_due_experiments_task", "schedule": 60.0},
    # Pending outbox events whose next attempt has come (a lost publish or a retry whose task was lost).
    "deliveries-due": {"task": "routing.integrations.tasks.deliveries_due", "schedule": 30.0},
    # Handoffs still unconfirmed past their target's confirm_within_minutes open handoff_unconfirmed (once each).
    "handoffs-unconfirmed": {"task": "routing.integrations.tasks.handoffs_unconfirmed", "schedule": 60.0},
    "alerts-due": {"task": "exceptions.alert_tasks.alerts_due", "schedule": 30.0},
    # Enrichment's success rate over the last hour: an incident opens below target (and resolves on recovery);
    # while it is open, leads waiting for the provider go to a person (each tick: those within a minute of
    # HANDOFF_ENRICHMENT_FALLBACK_MINUTES).
    "enrichment-health": {"task": "routing.integrations.tasks.enrichment_health", "schedule": 60.0},
    # Dashboard rollups: today and yesterday every 5 minutes; five weeks each night (cohorts still being worked).
    "dashboard-rollup-recent": {"task": "routing.dashboard.tasks.dashboard_rollup_task", "schedule": 300.0},
    "dashboard-rollup-nightly": {
        "task": "routing.dashboard.tasks.dashboard_rollup_task",
        "schedule": crontab(minute=30, hour=2),
        "kwargs": {"days_back": 35},
    },
    # Each morning after the parity: yesterday against the trailing 14 days.
    "anomaly-report": {
        "task": "routing.operations.tasks.anomaly_report_task",
        "schedule": crontab(minute=30, hour=env_int("HANDOFF_RECONCILE_HOUR", 6)),
    },
    # The 1st of each month: last month's root causes by email (exceptions.root_cause); the 2nd and 3rd send it
    # only if the mail server did not take it before (it is recorded once sent).
    "root-cause-report": {
        "task": "exceptions.tasks.root_cause_report_task",
        "schedule": crontab(minute=0, hour=7, day_of_month="1-3"),
    },
    "monday-checklist": {
        "task": "routing.operations.tasks.monday_checklist_task",
        "schedule": crontab(minute=0, hour=8, day_of_week="mon"),
    },
    # Each morning: yesterday's parity of captured, routed and delivered leads, stuck work sent again.
    "reconcile-daily": {
        "task": "routing.integrations.tasks.reconcile_daily",
        "schedule": crontab(minute=0, hour=env_int("HANDOFF_RECONCILE_HOUR", 6)),
    },
    # Each night: retention (routing/erasure.py): old leads erased, old delivery and intake payloads emptied.
    "apply-retention": {"task": "routing.tasks.apply_retention", "schedule": crontab(minute=40, hour=3)},
    # Each morning: owners of rules whose SLA adherence over 7 days is below target are told (once a week).
    "sla-target-check": {
        "task": "routing.governance.tasks.sla_target_check_task",
        "schedule": crontab(minute=15, hour=env_int("HANDOFF_RECONCILE_HOUR", 6)),
    },
    # Monday morning: owners with production rules not yet signed off this week get one email. Hourly
    # from then to the end of Monday, so a worker that was down at the first tick still sends it (once).
    "sign-off-reminders": {
        "task": "routing.governance.tasks.sign_off_reminders_task",
        "schedule": crontab(minute=0, hour=f"{env_int('HANDOFF_SIGN_OFF_REMINDER_HOUR', 8)}-23", day_of_week="mon"),
    },
}

# Product settings.
HANDOFF = {
    # Exceptions that no rule's queue owns (missing contact, no matching rule, nobody eligible) land here.
    "TRIAGE_QUEUE": env_str("HANDOFF_TRIAGE_QUEUE", "Triage"),
    # A lead still `received` this long after intake (or its last re-queue) is published again.
    "REQUEUE_GRACE_SECONDS": env_int("HANDOFF_REQUEUE_GRACE_SECONDS", 120),
    # ... unless this many routing tasks are already waiting in the broker (workers are behind, not gone).
    "REQUEUE_MAX_BACKLOG": env_int("HANDOFF_REQUEUE_MAX_BACKLOG", 10000),
    # POST /api/v1/leads/batch/ answers 429 while more leads than this wait for routing (single leads never do).
    "BULK_BACKLOG_LIMIT": env_int("HANDOFF_BULK_BACKLOG_LIMIT", 250_000),
    "MAX_BODY_BYTES": 64 * 1024,
    "MAX_BATCH_ITEMS": 500,
    # Rejected posts (inbound dead letters): the first bytes of each kept, how many per source, how long.
    "REJECTED_EXCERPT_BYTES": env_int("HANDOFF_REJECTED_EXCERPT_BYTES", 8 * 1024),
    "REJECTED_POSTS_PER_SOURCE": env_int("HANDOFF_REJECTED_POSTS_PER_SOURCE", 1000),
    "REJECTED_POSTS_DAYS": env_int("HANDOFF_REJECTED_POSTS_DAYS", 30),
    "MAX_BATCH_BODY_BYTES": 8 * 1024 * 1024,
    # Leads per routing task published by the batch endpoint.
    "ROUTE_CHUNK_SIZE": 250,
    # A capture source's token is looked up once per process per this many seconds; a revoked token stops
    # working in other processes within it (at once in the process that revoked it).
    "SOURCE_TOKEN_CACHE_SECONDS": env_float("HANDOFF_SOURCE_TOKEN_CACHE_SECONDS", 10),
    # Intake publishes routing from a background thread, which waits this long for more leads to share a task.
    "PUBLISH_LINGER_MS": env_float("HANDOFF_PUBLISH_LINGER_MS", 25),
    # An exception on a lead with intent_score above this escalates at level 2 as soon as it breaches.
    "HIGH_INTENT_THRESHOLD": env_int("HANDOFF_HIGH_INTENT_THRESHOLD", 80),
    # A lead no rule has decided yet that is still unassigned this many minutes after receipt opens a
    # routing_sla_breached item (a rule's own sla_minutes applies once it decided; exceptions.routing_sla).
    "ROUTING_SLO_MINUTES": env_int("HANDOFF_ROUTING_SLO_MINUTES", 5),
    # Reminders go out this many minutes before an acknowledge or resolve due time.
    "REMINDER_MINUTES": env_int("HANDOFF_REMINDER_MINUTES", 10),
    # Incidents: this many unresolved items of one cause (a delivery target and its error class, the enrichment
    # provider, a source no rule matches) opened within this many minutes are one incident (exceptions.incidents).
    "INCIDENT_MIN_ITEMS": env_int("HANDOFF_INCIDENT_MIN_ITEMS", 3),
    "INCIDENT_WINDOW_MINUTES": env_int("HANDOFF_INCIDENT_WINDOW_MINUTES", 30),
    # The item list refreshes its rows this often while the tab is visible (0: never).
    "LIST_REFRESH_SECONDS": env_int("HANDOFF_LIST_REFRESH_SECONDS", 20),
    # Delivery retries: the n-th wait is this × 2^(n-1), ±20% jitter (8 attempts: about an hour in all),
    # or what the target's Retry-After asks, up to an hour.
    "DELIVERY_RETRY_BASE_SECONDS": env_float("HANDOFF_DELIVERY_RETRY_BASE_SECONDS", 30.0),
    # Enrichment retries: the n-th wait is this × 2^(n-1), ±20% (or Retry-After); the lead waits meanwhile.
    "ENRICHMENT_RETRY_BASE_SECONDS": env_float("HANDOFF_ENRICHMENT_RETRY_BASE_SECONDS", 2.0),
    # Leads per enrichment task, and how many of a task's calls to the provider are in flight at once: a task
    # of a dead provider takes about (chunk / concurrency) × its timeout, well inside the task's time limit.
    "ENRICH_CHUNK_SIZE": env_int("HANDOFF_ENRICH_CHUNK_SIZE", 20),
    "ENRICHMENT_CONCURRENCY": env_int("HANDOFF_ENRICHMENT_CONCURRENCY", 10),
    # The provider's circuit breaker: after this many failed attempts in a row (any leads), it counts as down
    # for this many seconds and leads route at once without it, rather than each waiting out its retries.
    "ENRICHMENT_BREAKER_FAILURES": env_int("HANDOFF_ENRICHMENT_BREAKER_FAILURES", 10),
    "ENRICHMENT_BREAKER_SECONDS": env_float("HANDOFF_ENRICHMENT_BREAKER_SECONDS", 60),
    # A lead whose enrichment failed for good, with intent_score above this, goes to a person for review.
    "ENRICHMENT_REVIEW_INTENT": env_int("HANDOFF_ENRICHMENT_REVIEW_INTENT", 70),
    "ENRICHMENT_REVIEW_QUEUE": env_str("HANDOFF_ENRICHMENT_REVIEW_QUEUE", "Manual review"),
    # Enrichment held to its target (routing/integrations/enrichment_health.py): below this share of answered
    # calls over the last hour (judged once there are ENRICHMENT_MIN_CALLS), an incident opens; while it is
    # open no lead waits for the provider, and those waiting longer than ENRICHMENT_FALLBACK_MINUTES go to a
    # person whatever their intent.
    "ENRICHMENT_SUCCESS_TARGET": env_float("HANDOFF_ENRICHMENT_SUCCESS_TARGET", 0.99),
    "ENRICHMENT_MIN_CALLS": env_int("HANDOFF_ENRICHMENT_MIN_CALLS", 20),
    "ENRICHMENT_FALLBACK_MINUTES": env_int("HANDOFF_ENRICHMENT_FALLBACK_MINUTES", 15),
    # Reconciliation: a gap between captured, routed and delivered above this share opens an incident.
    "PARITY_THRESHOLD": env_float("HANDOFF_PARITY_THRESHOLD", 0.01),
    # ... and is emailed here (the system owner); also the attribution variance threshold.
    "SYSTEM_OWNER_EMAIL": env_str("HANDOFF_SYSTEM_OWNER_EMAIL", ""),
    # The system owner as a person (a username): owner and escalation contact of the queues the product
    # creates itself (Triage, Manual review). Unset or not an active account: those queues stay without.
    "SYSTEM_OWNER": env_str("HANDOFF_SYSTEM_OWNER", ""),
    # An event still undelivered this long after it was written counts as stuck in the daily report.
    "DELIVERY_GRACE_SECONDS": env_int("HANDOFF_DELIVERY_GRACE_SECONDS", 3600),
    "ATTRIBUTION_MAX_BYTES": env_int("HANDOFF_ATTRIBUTION_MAX_BYTES", 20 * 1024 * 1024),
    "ATTRIBUTION_MAX_ROWS": env_int("HANDOFF_ATTRIBUTION_MAX_ROWS", 200_000),
    # An attribution upload's rows with one of these stages (case-insensitive) mark our lead converted, for
    # the experiments' conversion figures.
    "CONVERTED_STAGES": env_list("HANDOFF_CONVERTED_STAGES", "converted,closed won,won"),
    # Anomaly band: flag a measure above mean + this many deviations (deviation at least this share of it).
    "ANOMALY_SIGMAS": env_float("HANDOFF_ANOMALY_SIGMAS", 3.0),
    "ANOMALY_MIN_SHARE": env_float("HANDOFF_ANOMALY_MIN_SHARE", 0.25),
    # The Monday checklist email goes to the system owner and these addresses.
    "CHECKLIST_RECIPIENTS": env_list("HANDOFF_CHECKLIST_RECIPIENTS"),
    # The Monday checklist email the mail server did not take is tried again this often, for up to 12 tries.
    "CHECKLIST_RETRY_SECONDS": env_int("HANDOFF_CHECKLIST_RETRY_SECONDS", 300),
    # An incident whose items reach this share (a fraction: 0.05 = 5%) of the leads captured on the days it
    # spanned needs a postmortem, due this many days after it resolves (exceptions.postmortems).
    "POSTMORTEM_THRESHOLD": env_float("HANDOFF_POSTMORTEM_THRESHOLD", 0.05),
    "POSTMORTEM_DUE_DAYS": env_int("HANDOFF_POSTMORTEM_DUE_DAYS", 5),
    # The monthly root-cause report goes to admins, queue owners, the system owner and these addresses.
    "ROOT_CAUSE_RECIPIENTS": env_list("HANDOFF_ROOT_CAUSE_RECIPIENTS"),
    # A rule with this many manual overrides in one ISO week is flagged on its page and in sign-off.
    "OVERRIDE_FLAG_THRESHOLD": env_int("HANDOFF_OVERRIDE_FLAG_THRESHOLD", 3),
    # On: a staging version goes to production only once someone other than the promoter (the rule's owner,
    # backup owner or an admin) approved it (routing/governance/approvals.py); forced promotions excepted.
    "PRODUCTION_APPROVAL": env_bool("HANDOFF_PRODUCTION_APPROVAL", False),
    # Sticky ownership: a person's new lead goes to whoever holds their open lead assigned within this many
    # days (unless the deciding rule says `"assignee": "queue"` or "account_owner"). 0 turns it off.
    "STICKY_OWNERSHIP_DAYS": env_int("HANDOFF_STICKY_OWNERSHIP_DAYS", 30),
    # Retention (routing/erasure.py, nightly): leads received this many days ago have their personal values
    # erased (0 keeps them forever); delivered events' payloads, delivery errors, enrichment answers and
    # rejected posts are emptied after this many days (0 keeps them).
    "RETENTION_LEAD_DAYS": env_int("HANDOFF_RETENTION_LEAD_DAYS", 0),
    "RETENTION_PAYLOAD_DAYS": env_int("HANDOFF_RETENTION_PAYLOAD_DAYS", 90),
    # Links in notification emails point here.
    "CONSOLE_URL": env_str("HANDOFF_CONSOLE_URL", "http://127.0.0.1:8000"),
    # /metrics answers a request bearing this token ("Authorization: Bearer …"), or a direct (not proxied)
    # connection from one of these networks. Neither: 403.
    "METRICS_TOKEN": env_str("HANDOFF_METRICS_TOKEN", ""),
    "METRICS_ALLOW": env_networks("HANDOFF_METRICS_ALLOW", "127.0.0.1/32,::1/128"),
    # Delivery targets and enrichment providers are reached only at public addresses, and at addresses in
    # these networks (docs/security.md, finding 6): an on-premises CRM on 10.0.0.0/8, say. Development
    # (DEBUG) allows loopback, for local fakes; production allows nothing else unless told.
    # Delivery secrets and enrichment credentials are stored encrypted with these Fernet keys, newest first
    # (docs/security.md, finding 7: rotation). Development gets a throwaway key; anything else must be given one.
    "SECRETS_KEYS": env_fernet_keys("HANDOFF_SECRETS_KEY", _DEV_SECRETS_KEY if DEBUG else None),
    # Personal API tokens expire this many days after they are made (at most API_TOKEN_MAX_DAYS).
    "API_TOKEN_DAYS": env_int("HANDOFF_API_TOKEN_DAYS", 90),
    "API_TOKEN_MAX_DAYS": 366,
    "OUTBOUND_ALLOW": env_networks("HANDOFF_OUTBOUND_ALLOW", "127.0.0.0/8,::1/128" if DEBUG else ""),
}
DEFAULT_FROM_EMAIL = env_str("DJANGO_DEFAULT_FROM_EMAIL", "handoff@localhost")
EMAIL_BACKEND = env_str(
    "DJANGO_EMAIL_BACKEND",
    "django.core.mail.backends.console.EmailBackend" if DEBUG else "django.core.mail.backends.smtp.EmailBackend",
)
EMAIL_HOST = env_str("DJANGO_EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("DJANGO_EMAIL_PORT", 25)

# One line per record: JSON outside DEBUG, with the lead, exception, event and task ids the work is about
# (config/logs.py). Celery workers log through this too, not through Celery's own format.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"context": {"()": "config.logs.ContextFilter"}},
    "formatters": {
        "plain": {
            "()": "config.logs.PlainFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s %(message)s",
        },
        "json": {"()": "config.logs.JsonFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "filters": ["context"],
            "formatter": env_choice("LOG_FORMAT", "plain" if DEBUG else "json", ("plain", "json")),
        }
    },
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

# Plain HTTP on a private network, no TLS anywhere (README: Behind a reverse proxy): browsers refuse Secure
# cookies over http, so without this nobody could sign in; HSTS would pin the host to an HTTPS that is not there.
PLAIN_HTTP = env_bool("HANDOFF_PLAIN_HTTP", default=False)

if not DEBUG:
    SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", not PLAIN_HTTP)
    # Probes speak plain HTTP to the process; a redirect would count as healthy without checking anything.
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
    if HANDOFF_PROXY_COUNT:
        # Only behind a proxy that sets X-Forwarded-Proto itself (a client's own value must never get through):
        # otherwise anyone could claim HTTPS on a plain connection.
        SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_HSTS_SECONDS = env_int("DJANGO_SECURE_HSTS_SECONDS", 0 if PLAIN_HTTP else 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SESSION_COOKIE_SECURE = not PLAIN_HTTP
    CSRF_COOKIE_SECURE = not PLAIN_HTTP
    SECURE_CONTENT_TYPE_NOSNIFF = True
    X_FRAME_OPTIONS = "DENY"
