"""Settings fail loudly, with the variable's name, on a bad value."""

import os
import subprocess
import sys

import pytest

from tests.servers import ROOT


def load_settings(**env: str) -> subprocess.CompletedProcess:
    environment = {**os.environ, "DEBUG": "1", "DJANGO_SETTINGS_MODULE": "guitara.settings", **env}
    environment.pop("DATABASE_URL", None)
    return subprocess.run([sys.executable, "-c", "import django; django.setup()"], cwd=ROOT, env=environment,
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(("name", "value", "says"), [
    ("PUBLISH_TIMEOUT_SECONDS", "soon", "PUBLISH_TIMEOUT_SECONDS must be a number, got 'soon'"),
    ("PUBLISH_TIMEOUT_SECONDS", "nan", "PUBLISH_TIMEOUT_SECONDS must be at least"),
    ("RESPONSE_DEADLINE_MINUTES", "half an hour", "RESPONSE_DEADLINE_MINUTES must be an integer"),
    ("TRAVEL_BUFFER_MINUTES", "-5", "TRAVEL_BUFFER_MINUTES must be at least 0"),
    ("AUTO_REOFFER", "maybe", "AUTO_REOFFER must be on or off"),
    ("REOFFER_MAX", "three", "REOFFER_MAX must be an integer"),
])
def test_a_bad_value_names_the_setting(name, value, says):
    result = load_settings(**{name: value})
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and says in result.stderr


def test_good_values_load():
    result = load_settings(PUBLISH_TIMEOUT_SECONDS="0.5", AUTO_REOFFER="on", TRAVEL_BUFFER_MINUTES="0")
    assert result.returncode == 0, result.stderr
