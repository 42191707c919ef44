"""The Celery app built from the manifest (signal4.workers.celeryapp), without a broker."""

from __future__ import annotations

import dataclasses

import pytest

from signal4.envs.manifest import Manifest
from signal4.workers import celeryapp, wire


def test_queues_routes_and_limits_come_from_the_manifest(project_manifest: Manifest) -> None:
    conf = celeryapp.config(project_manifest, "redis://example:6379/0")
    assert {q.name for q in conf["task_queues"]} == {f"signal4.{e}" for e in project_manifest.envs}
    for task in project_manifest.tasks.values():
        assert conf["task_routes"][f"signal4.{task.name}"] == {"queue": f"signal4.{task.env}"}
    assert conf["task_acks_late"] and conf["task_reject_on_worker_lost"]
    assert conf["worker_prefetch_multiplier"] == 1
    assert conf["result_backend"] == conf["broker_url"] == "redis://example:6379/0"
    longest = max(t.timeout for t in project_manifest.tasks.values())
    assert conf["broker_transport_options"]["visibility_timeout"] > longest


def test_broker_url_order(monkeypatch: pytest.MonkeyPatch) -> None:
    from signal4.content import settings

    assert celeryapp.broker_url() == celeryapp.DEFAULT_BROKER
    monkeypatch.setenv("SIGNAL4_BROKER_URL", "redis://elsewhere:1/2")
    settings.get.cache_clear()
    assert celeryapp.broker_url() == "redis://elsewhere:1/2"
    assert celeryapp.broker_url("redis://given:3/0") == "redis://given:3/0"


def test_good_broker_urls_pass_and_an_empty_one_is_the_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from signal4.content import settings

    for url in (
        "redis://127.0.0.1:6379/0",
        "redis://:secret@host:6380/2",
        "rediss://host/0",
        "redis://host",
    ):
        assert celeryapp.broker_url(url) == url
    assert celeryapp.broker_url("") == celeryapp.DEFAULT_BROKER
    monkeypatch.setenv("SIGNAL4_BROKER_URL", "")
    settings.get.cache_clear()
    assert celeryapp.broker_url() == celeryapp.DEFAULT_BROKER
    monkeypatch.setenv("SIGNAL4_BROKER_URL", "redis://:secret@host:notaport/0")
    settings.get.cache_clear()
    with pytest.raises(wire.BadBrokerUrl) as err:
        celeryapp.broker_url()
    assert "SIGNAL4_BROKER_URL" in str(err.value) and "secret" not in str(err.value)


def test_a_tasks_limits_are_its_timeout_and_a_grace_and_none_for_no_timeout(
    project_manifest: Manifest,
) -> None:
    stitch = project_manifest.task("stitch")
    assert celeryapp.task_name(stitch) == "signal4.stitch"
    assert celeryapp.limits(stitch) == (stitch.timeout, stitch.timeout + celeryapp.HARD_LIMIT_GRACE)
    assert celeryapp.limits(dataclasses.replace(stitch, timeout=0)) == (None, None)
    assert celeryapp.queues(project_manifest) == [f"signal4.{env}" for env in project_manifest.envs]


def test_the_app_is_configured_for_the_broker_it_is_given(project_manifest: Manifest) -> None:
    app = celeryapp.create(project_manifest, "redis://127.0.0.1:6390/3")
    try:
        assert app.conf.broker_url == app.conf.result_backend == "redis://127.0.0.1:6390/3"
        assert app.conf.accept_content == ["json"] and app.conf.task_track_started
    finally:
        app.close()
    with pytest.raises(wire.BadBrokerUrl):
        celeryapp.create(project_manifest, "http://127.0.0.1:6390/3")
