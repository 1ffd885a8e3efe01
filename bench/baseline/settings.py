"""The product's settings (from the environment, as in production), with the bench URLconf."""

from config.settings import *  # noqa: F403

ROOT_URLCONF = "bench.baseline.urls"
