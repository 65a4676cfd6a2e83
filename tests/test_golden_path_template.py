"""The golden-path template and its skeleton, checked without Backstage (tests/e2e runs them in a real one):
every step names an action that exists, sends only inputs its schema knows and every input it requires, and,
with the wizard's values, validates against the published schema; the skeleton renders into a service whose
manifests pass the Kubernetes schemas and whose catalog entity passes catalog-model's rules."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from backend.services.registry import builtin_actions
from backend.services.schema_export import describe
from backend.skeletons import load_skeleton, render_skeleton
from tests.catalog_rules import problems

TEMPLATES = Path(__file__).resolve().parent.parent / "catalog-info" / "templates"
TEMPLATE = yaml.safe_load((TEMPLATES / "golden-path-service" / "template.yaml").read_text(encoding="utf-8"))
DESCRIBED = {action.id: describe(action) for action in builtin_actions()}
WIZARD = {"name": "payments-api", "description": "Takes payments", "owner": "group:default/team-payments",
          "system": "system:default/payments", "costCenter": "cc-1234", "environments": ["dev", "prod"],
          "tier": "small", "visibility": "private"}
# The only expressions the template uses, evaluated as Backstage does (parseEntityRef + pick("name")).
PARAMETER = re.compile(r"^\$\{\{ parameters\.(\w+) \}\}$")
SYSTEM_NAME = ('${{ parameters.system | parseEntityRef({ defaultKind: "system", defaultNamespace: "default" }) '
               '| pick("name") }}')
STEPS = TEMPLATE["spec"]["steps"]


def rendered(value: Any) -> Any:
    if isinstance(value, list):
        return [rendered(item) for item in value]
    if not isinstance(value, str) or "${{" not in value:
        return value
    if value == SYSTEM_NAME:
        return WIZARD["system"].rsplit("/", 1)[-1]
    match = PARAMETER.match(value)
    assert match, f"an expression this test does not know how to evaluate: {value}"
    return WIZARD[match.group(1)]


def test_the_steps_plan_then_provision_then_register() -> None:
    assert TEMPLATE["apiVersion"] == "scaffolder.backstage.io/v1beta3" and TEMPLATE["kind"] == "Template"
    assert [(s["id"], s["action"]) for s in STEPS] == [
        ("plan", "goldenpath:platform:service:plan"), ("repository", "goldenpath:git:repository:create"),
        ("secrets", "goldenpath:vault:secrets-path:create"),
        ("namespaces", "goldenpath:kubernetes:namespace:create"),
        ("register", "goldenpath:catalog:service:register")]
    assert DESCRIBED["goldenpath:platform:service:plan"]["attributes"]["readOnly"] is True  # runs in dry-runs


@pytest.mark.parametrize("step", STEPS, ids=lambda s: s["id"])
def test_each_step_sends_what_its_action_accepts_and_needs(step: dict[str, Any]) -> None:
    schema = DESCRIBED[step["action"]]["schema"]["input"]
    assert set(step["input"]) <= set(schema["properties"]), set(step["input"]) - set(schema["properties"])
    assert set(schema.get("required", [])) <= set(step["input"])
    jsonschema.validate({key: rendered(value) for key, value in step["input"].items()}, schema)


def test_the_wizard_asks_for_everything_the_steps_use() -> None:
    pages = TEMPLATE["spec"]["parameters"]
    declared = {name: prop for page in pages for name, prop in page["properties"].items()}
    used = set(re.findall(r"parameters\.(\w+)", yaml.safe_dump(TEMPLATE["spec"]["steps"])))
    assert used <= set(declared)
    # Backstage's backend applies no defaults: every parameter a step uses is required on its page
    assert used <= {name for page in pages for name in page.get("required", [])}
    for page in pages:
        page_schema = {"type": "object", **{k: v for k, v in page.items() if k in {"properties", "required"}}}
        jsonschema.Draft7Validator.check_schema(page_schema)
        jsonschema.validate({k: v for k, v in WIZARD.items() if k in page["properties"]}, page_schema)
    assert declared["owner"]["ui:field"] == "OwnerPicker" and declared["system"]["ui:field"] == "EntityPicker"


def test_the_outputs_link_the_repository_the_secrets_and_the_catalog_entity() -> None:
    links = {link["title"]: link for link in TEMPLATE["spec"]["output"]["links"]}
    assert links["Repository"]["url"] == "${{ steps.repository.output.repoContentsUrl }}"
    assert links["Open in the catalog"]["entityRef"] == "${{ steps.register.output.entityRef }}"
    outputs = {step["id"]: DESCRIBED[step["action"]]["schema"]["output"]["properties"] for step in STEPS}
    for step_id, name in re.findall(r"steps\.(\w+)\.output\.(\w+)", yaml.safe_dump(TEMPLATE["spec"]["output"])):
        assert name in outputs[step_id], f"{step_id} has no output {name}"


def test_the_skeleton_renders_a_deployable_documented_service() -> None:
    skeleton = load_skeleton(TEMPLATES, "golden-path-service")
    files = render_skeleton(skeleton, {
        "name": "payments-api", "description": 'Pays "things"\nkind: Evil', "owner": "group:default/team-payments",
        "owner_team": "team-payments", "system": "payments", "org": "acme", "default_branch": "main",
        "service_account": "payments-api"})
    assert {"README.md", "Dockerfile", "CODEOWNERS", "catalog-info.yaml", "mkdocs.yml", "docs/index.md",
            ".github/workflows/ci.yaml", "deploy/deployment.yaml", "tests/test_app.py"} <= set(files)
    manifests = list(yaml.safe_load_all(files["deploy/deployment.yaml"]))
    assert [m["kind"] for m in manifests] == ["Deployment", "Service"]
    for manifest in manifests:
        kubernetes_validate.validate(manifest, "1.33", strict=True)
    pod = manifests[0]["spec"]["template"]
    assert pod["metadata"]["labels"]["backstage.io/kubernetes-id"] == "payments-api"
    assert pod["spec"]["serviceAccountName"] == "payments-api"
    assert pod["spec"]["containers"][0]["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    entity = yaml.safe_load(files["catalog-info.yaml"])
    assert problems(entity) == [] and entity["metadata"]["description"] == 'Pays "things"\nkind: Evil'
    assert yaml.safe_load(files["mkdocs.yml"])["nav"] == [{"Home": "index.md"}]
