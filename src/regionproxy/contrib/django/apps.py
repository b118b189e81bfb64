"""The Django app: registers the settings check and test-settings reset."""

from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.core import checks


class RegionProxyConfig(AppConfig):
    name = "regionproxy.contrib.django"
    label = "regionproxy"
    verbose_name = "regionproxy"

    def ready(self) -> None:
        from django.test.signals import setting_changed

        checks.register(check_settings, checks.Tags.compatibility)
        setting_changed.connect(_settings_changed)


def check_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """``regionproxy.E001``: ``settings.REGIONPROXY`` is missing or wrong."""
    from django.conf import settings

    from regionproxy._config.environment import ENV_PREFIX, settings_from_env
    from regionproxy._web.options import check_options, middleware_options
    from regionproxy.contrib import check_settings as known
    from regionproxy.contrib.django import merged_settings
    from regionproxy.errors import ConfigError

    config = getattr(settings, "REGIONPROXY", None)
    if not isinstance(config, dict):
        return [checks.Error("settings.REGIONPROXY must be a dict", hint="REGIONPROXY = {'REGIONS': [...]}", id="regionproxy.E001")]
    try:
        known(config)
        merged = merged_settings(config)  # the environment under the settings, as the middleware reads them
        settings_from_env({ENV_PREFIX + name: value for name, value in merged.items()})
        check_options(middleware_options(merged))  # each value, then paths against each other
    except ConfigError as error:
        return [checks.Error(f"settings.REGIONPROXY: {error}", id="regionproxy.E001")]
    return []


def _settings_changed(setting: str, **kwargs: Any) -> None:
    if setting == "REGIONPROXY":
        from regionproxy.contrib.django import reset

        reset()
