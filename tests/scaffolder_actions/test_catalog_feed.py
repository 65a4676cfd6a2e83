"""The catalog: the register action and the entity feed, after the three provisioning actions ran for real
(local git, OpenBao, GitOps namespaces). Multi-document YAML, strong ETag and 304, catalog-model rules,
user text that cannot break out of its value, conflicts."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import pytest
import yaml
from starlette.testclient import TestClient

from backend.catalog import entity_name
from tests.catalog_rules import problems
from tests.conftest import API_TOKEN, unique
from tests.scaffolder_actions.provisioning import EVIL, REGISTER, provision

FEED = "/api/v1/catalog/entities.yaml"


@pytest.fixture
def client(make_app: Callable[..., Any]) -> TestClient:
    app, _ = make_app(repositories={"org": "acme"})
    return app.test_client(headers={"Authorization": f"Bearer {API_TOKEN}"})


def feed(client: TestClient, **headers: str) -> Any:
    return client.get(FEED, headers={"Authorization": "", **headers})


def test_the_feed_serves_the_service_and_what_was_made_for_it(client: TestClient) -> None:
    service = unique("svc")
    registered = provision(client, service)
    answer = feed(client)
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("application/yaml")
    assert answer.headers["etag"] == '"' + hashlib.sha256(answer.content).hexdigest()[:40] + '"'
    documents = list(yaml.safe_load_all(answer.text))
    assert [d["kind"] for d in documents] == ["Component"] + ["Resource"] * 5  # repo, 2 secrets paths, 2 namespaces
    for entity in documents:
        assert problems(entity) == [], entity["metadata"]["name"]

    component = documents[0]
    assert component["metadata"]["description"] == EVIL  # user text stayed one value
    annotations = component["metadata"]["annotations"]
    assert annotations["backstage.io/source-location"].startswith("url:http://") and (
        annotations["backstage.io/source-location"].endswith(f"/git/acme/{service}.git/"))
    assert annotations["backstage.io/techdocs-ref"] == "dir:."
    assert annotations["vault.io/secrets-path"] == f"dev/payments/{service}"
    assert annotations["backstage.io/kubernetes-id"] == service
    assert annotations["backstage.io/kubernetes-label-selector"] == f"goldenpath.dev/service={service}"
    assert component["metadata"]["labels"] == {"goldenpath.dev/cost-center": "cc-1234"}
    assert component["spec"] == {
        "type": "service", "lifecycle": "production", "owner": "group:default/team-payments", "system": "payments",
        "dependsOn": [f"resource:default/{d['metadata']['name']}" for d in documents[1:]]}
    assert registered["output"]["resources"] == component["spec"]["dependsOn"]
    assert {d["spec"]["type"] for d in documents[1:]} == {"git-repository", "vault-secrets-path",
                                                          "kubernetes-namespace"}
    assert all(d["metadata"]["labels"]["goldenpath.dev/cost-center"] == "cc-1234" for d in documents[1:])
    titles = [link["title"] for link in component["metadata"]["links"]]
    assert titles[0] == "Runbook" and "Repository" in titles and "Secrets (dev)" in titles


def test_etag_304_and_a_rerun_keeps_the_etag(client: TestClient) -> None:
    empty = feed(client)
    assert empty.status_code == 200 and empty.text == ""
    assert feed(client, **{"If-None-Match": empty.headers["etag"]}).status_code == 304
    service = unique("svc")
    provision(client, service)
    first = feed(client)
    assert first.headers["etag"] != empty.headers["etag"]
    not_modified = feed(client, **{"If-None-Match": first.headers["etag"]})
    assert not_modified.status_code == 304 and not_modified.content == b""
    assert not_modified.headers["etag"] == first.headers["etag"]
    again = provision(client, service)  # every action again: nothing changes
    assert again["output"]["changed"] is False
    assert feed(client).headers["etag"] == first.headers["etag"]
    updated = client.post(REGISTER, json={"input": {
        "service": service, "system": "payments", "owner": "group:default/team-payments", "costCenter": "cc-9",
        "description": "New words"}}).json()
    assert [c.get("fields") for c in updated["changes"]] == [["costCenter", "description", "environments", "lifecycle",
                                                               "links", "tags"]]
    assert feed(client, **{"If-None-Match": first.headers["etag"]}).status_code == 200


def test_the_json_form_needs_a_token(client: TestClient) -> None:
    provision(client, unique("svc"))
    assert client.get("/api/v1/catalog/entities", headers={"Authorization": ""}).status_code == 401
    answer = client.get("/api/v1/catalog/entities")
    assert answer.status_code == 200 and answer.json()["items"][0]["kind"] == "Component"
    assert client.get("/api/v1/catalog/entities", headers={"If-None-Match": answer.headers["etag"]}).status_code == 304


def test_another_owner_cannot_take_the_service(client: TestClient) -> None:
    service = unique("svc")
    provision(client, service)
    taken = client.post(REGISTER, json={"input": {
        "service": service, "system": "payments", "owner": "group:default/team-other", "costCenter": "cc-1",
        "description": "mine now"}})
    assert taken.status_code == 409 and taken.json()["owner"] == "group:default/team-payments"


@pytest.mark.parametrize(("overrides", "field"), [
    ({"tags": ["Python"]}, "tags.0"), ({"links": [{"url": "javascript:alert(1)", "title": "x"}]}, "links.0.url"),
    ({"lifecycle": "forever"}, "lifecycle"), ({"service": "Bad_Name"}, "service"),
])
def test_bad_registration_input_names_the_field(client: TestClient, overrides: dict[str, Any], field: str) -> None:
    body = {"service": unique("svc"), "system": "payments", "owner": "group:default/team-payments",
            "costCenter": "cc-1", "description": "x", **overrides}
    answer = client.post(REGISTER, json={"input": body})
    assert answer.status_code == 400
    assert [e["field"] for e in answer.json()["errors"]] == [field]


def test_entity_names_stay_valid_and_distinct() -> None:
    long_a, long_b = "a" * 60 + "-x", "a" * 60 + "-y"
    names = {entity_name(long_a, "namespace", "prod", "eu"), entity_name(long_b, "namespace", "prod", "eu")}
    assert len(names) == 2 and all(len(n) <= 63 for n in names)
    assert entity_name("svc", "secrets", "dev") == "svc.secrets.dev"
    # the dash-joined form let service "a-secrets" in "dev" and service "a" in "secrets-dev" share a name
    assert entity_name("a-b", "secrets", "dev") != entity_name("a", "b-secrets", "dev")


def test_registration_follows_the_platform_cost_center_format(make_app: Callable[..., Any]) -> None:
    app, _ = make_app(policy={"cost_center_pattern": r"cc-[0-9]{4}"})
    client = app.test_client(headers={"Authorization": f"Bearer {API_TOKEN}"})
    body = {"service": unique("svc"), "system": "payments", "owner": "group:default/team-payments",
            "costCenter": "marketing", "description": "x"}
    refused = client.post(REGISTER, json={"input": body})
    assert refused.status_code == 422, refused.text
    assert refused.json()["errors"] == [{"field": "costCenter", "rule": "cost-center-format",
                                         "message": "must match the platform's cost-center format cc-[0-9]{4}"}]
    assert client.post(REGISTER, json={"input": {**body, "costCenter": "cc-0042"}}).status_code == 201
