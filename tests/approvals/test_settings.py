"""Settings from the environment, and refusal of values we cannot use."""

from __future__ import annotations

import pytest

from approvals import InvalidSettings, Settings


def test_defaults_are_the_embedded_store() -> None:
    settings = Settings.from_env({})
    assert settings.embedded
    assert (settings.prefix, settings.default_queue, settings.default_timeout) == ("apr:", "default", 3600.0)
    assert 16 <= settings.pool_size <= 32


def test_environment_is_read() -> None:
    settings = Settings.from_env(
        {
            "REDIS_URL": "redis://127.0.0.1:6379/2",
            "APPROVALS_PREFIX": "{apr}:",
            "APPROVALS_DEFAULT_TIMEOUT": "90",
            "APPROVALS_DEFAULT_QUEUE": "payments",
            "APPROVALS_POOL_SIZE": "24",
        }
    )
    assert not settings.embedded
    assert (settings.redis_url, settings.prefix, settings.default_timeout) == ("redis://127.0.0.1:6379/2", "{apr}:", 90)
    assert (settings.default_queue, settings.pool_size) == ("payments", 24)


def test_overrides_win_over_environment() -> None:
    assert Settings.from_env({"APPROVALS_DEFAULT_QUEUE": "a"}, default_queue="b").default_queue == "b"


def test_empty_redis_url_means_embedded() -> None:
    assert Settings.from_env({"REDIS_URL": "  "}).embedded


@pytest.mark.parametrize(
    ("environ", "name"),
    [
        ({"REDIS_URL": "localhost:6379"}, "redis_url"),
        ({"APPROVALS_DEFAULT_TIMEOUT": "soon"}, "APPROVALS_DEFAULT_TIMEOUT"),
        ({"APPROVALS_DEFAULT_TIMEOUT": "-5"}, "default_timeout"),
        ({"APPROVALS_DEFAULT_TIMEOUT": "nan"}, "default_timeout"),
        ({"APPROVALS_POOL_SIZE": "0"}, "pool_size"),
        ({"APPROVALS_POOL_SIZE": "2.5"}, "APPROVALS_POOL_SIZE"),
        ({"APPROVALS_DEFAULT_QUEUE": "no spaces"}, "default_queue"),
        ({"APPROVALS_PREFIX": "bad prefix"}, "prefix"),
        ({"APPROVALS_RETENTION": "0.5"}, "retention"),
    ],
)
def test_bad_values_are_refused_with_the_name(environ: dict[str, str], name: str) -> None:
    with pytest.raises(InvalidSettings) as caught:
        Settings.from_env(environ)
    assert caught.value.name == name


def test_display_url_hides_the_password() -> None:
    settings = Settings(redis_url="redis://user:s3cret@127.0.0.1:6379/0")
    assert "s3cret" not in settings.display_url
    assert settings.display_url == "redis://user:***@127.0.0.1:6379/0"
