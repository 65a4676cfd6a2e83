"""Configuration: YAML with ${ENV} substitution, short env overrides and GOLDENPATH_<SECTION>__<KEY>."""

import dataclasses
from pathlib import Path

import pytest
from pydantic import ValidationError

from backend.kube_settings import ClusterSettings
from backend.settings import AuthSettings, Settings, SettingsError, StaticToken, load_settings, settings_from_dict


def test_yaml_env_substitution_and_overrides(tmp_path: Path) -> None:
    config = tmp_path / "goldenpath.yaml"
    config.write_text(
        "server: {port: 8000}\n"
        "auth:\n  static_tokens: [{name: backstage, token: '${BACKSTAGE_TOKEN}'}]\n"
        "vault: {kv_mount: '${KV_MOUNT:-kv}', max_versions: 3}\n"
        "policy: {environments: [dev, prod]}\n"
    )
    env = {"BACKSTAGE_TOKEN": "from-env-123", "PORT": "9001", "GOLDENPATH_VAULT__CREATE_KV_MOUNT": "true",
           "GOLDENPATH_VAULT__MAX_VERSIONS": "12", "VAULT_ADDR": "http://vault:8200"}
    settings = load_settings(str(config), env)
    assert settings.port == 9001
    assert settings.auth.static_tokens[0].token == "from-env-123"
    assert (settings.vault.kv_mount, settings.vault.create_kv_mount, settings.vault.max_versions) == ("kv", True, 12)
    assert settings.vault.addr == "http://vault:8200"
    assert settings.policy.environments == ("dev", "prod")
    assert "from-env-123" not in repr(settings)


def test_a_missing_env_reference_is_an_error(tmp_path: Path) -> None:
    config = tmp_path / "goldenpath.yaml"
    config.write_text("auth: {token: '${NOT_SET_ANYWHERE}'}\n")
    with pytest.raises(KeyError, match="NOT_SET_ANYWHERE"):
        load_settings(str(config), {})


def test_vault_token_from_a_file(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("s.from-file\n")
    settings = load_settings(None, {"GOLDENPATH_VAULT__TOKEN_FILE": str(token_file)})
    assert settings.vault.resolved_token() == "s.from-file"


def test_github_settings_from_env_and_files(tmp_path: Path) -> None:
    key_file = tmp_path / "app.pem"
    key_file.write_text("-----BEGIN PRIVATE KEY-----\nnot-a-real-key\n-----END PRIVATE KEY-----\n")
    settings = load_settings(None, {
        "GITHUB_TOKEN": "ghp_from_env_123456", "GOLDENPATH_REPOSITORIES__PROVIDER": "github",
        "GOLDENPATH_GITHUB__API_URL": "https://ghe.example.com/api/v3", "GOLDENPATH_GITHUB__APP_ID": "42",
        "GOLDENPATH_GITHUB__APP_PRIVATE_KEY_FILE": str(key_file), "GOLDENPATH_GITHUB__APP_INSTALLATION_ID": "7",
        "GOLDENPATH_GITHUB__SECONDS_BETWEEN_WRITES": "0.5"})
    github = settings.github
    assert settings.repositories.provider == "github"
    assert (github.api_url, github.app_installation_id, github.seconds_between_writes) == (
        "https://ghe.example.com/api/v3", 7, 0.5)
    assert github.resolved_token() == "ghp_from_env_123456"
    assert "not-a-real-key" in (github.resolved_private_key() or "")
    assert "ghp_from_env_123456" not in repr(settings)


def test_the_example_configuration_loads() -> None:
    example = Path(__file__).parent.parent / "goldenpath.example.yaml"
    env = {"GITHUB_TOKEN": "ghp_example_0123456789", "GOLDENPATH_PROXY_TOKEN": "p" * 20,
           "GOLDENPATH_CI_TOKEN": "c" * 20}
    settings = load_settings(str(example), env)
    assert settings.repositories.provider == "github" and settings.github.resolved_token() == "ghp_example_0123456789"
    proxy, ci = settings.auth.static_tokens
    assert (proxy.groups, proxy.admin, ci.admin) == (("group:default/team-payments",), False, True)
    assert settings.auth.admin_groups == ("group:default/platform",) and not settings.policy.allow_workload_overrides
    assert settings.kubernetes.clusters
    assert settings.policy.cost_center_pattern and settings.catalog.refresh_location


def test_make_runs_configuration_connects_to_make_backstage() -> None:
    local = Path(__file__).parent.parent / "goldenpath.local.yaml"
    settings = load_settings(str(local), {"PORT": "8080"})
    assert settings.auth.backstage_url == "http://127.0.0.1:7007"
    assert settings.catalog.refresh_location == "http://127.0.0.1:8080/api/v1/catalog/entities.yaml"
    assert settings.catalog.backstage_token_file == "var/backstage-goldenpath-token"  # written by make backstage
    assert settings.auth.catalog_token_file == "var/backstage-goldenpath-token"  # catalog.entity.read too
    assert settings.auth.admin_groups == ("group:default/platform",)
    assert settings.repositories.provider == "local" and settings.vault.addr is None  # embedded defaults


def test_policy_rules_from_env_overrides() -> None:
    settings = load_settings(None, {"GOLDENPATH_POLICY__RESERVED_NAMES": "admin, root",
                                    "GOLDENPATH_POLICY__VISIBILITIES": "private",
                                    "GOLDENPATH_POLICY__COST_CENTER_PATTERN": "cc-[0-9]+"})
    assert settings.policy.reserved_names == ("admin", "root")
    assert settings.policy.visibilities == ("private",)
    assert settings.policy.cost_center_pattern == "cc-[0-9]+"


def test_trust_settings_from_env_overrides_and_the_short_token_is_admin() -> None:
    settings = load_settings(None, {"GOLDENPATH_TOKEN": "t" * 20,
                                    "GOLDENPATH_AUTH__ADMIN_GROUPS": "platform, Group:Ops/SRE",
                                    "GOLDENPATH_POLICY__ALLOW_WORKLOAD_OVERRIDES": "true",
                                    "GOLDENPATH_POLICY__RESERVED_NAMESPACES": "default,kube-*"})
    [token] = settings.auth.static_tokens
    assert token.admin and token.groups == ()
    assert settings.auth.admin_groups == ("group:default/platform", "group:ops/sre")
    assert settings.policy.allow_workload_overrides is True
    assert settings.policy.reserved_namespaces == ("default", "kube-*")


def test_a_misspelt_key_is_named_with_its_source_and_the_nearest_known_key(tmp_path: Path) -> None:
    config = tmp_path / "goldenpath.yaml"
    config.write_text("vault:\n  kv_mout: kv\n", encoding="utf-8")
    with pytest.raises(SettingsError, match=rf"unknown setting vault.kv_mout \(from {config}\); did you mean "
                                           r"vault.kv_mount\?"):
        load_settings(str(config), {})
    with pytest.raises(SettingsError, match=r"policy.enviroments \(from GOLDENPATH_POLICY__ENVIROMENTS\)"):
        load_settings(None, {"GOLDENPATH_POLICY__ENVIROMENTS": "dev"})
    with pytest.raises(SettingsError, match="unknown settings section 'valut'"):
        load_settings(None, {"GOLDENPATH_VALUT__ADDR": "http://x"})


def test_lists_from_the_environment_are_split_once() -> None:
    settings = load_settings(None, {"GOLDENPATH_KUBERNETES__INGRESS_NAMESPACES": "ingress-nginx, traefik"})
    assert settings.kubernetes.ingress_namespaces == ("ingress-nginx", "traefik")


def _problem(env: dict[str, str], config: Path | None = None) -> str:
    with pytest.raises(SettingsError) as caught:
        load_settings(str(config) if config else None, env)
    assert not isinstance(caught.value, ValidationError)  # pydantic's own error never reaches the operator
    return str(caught.value)


def test_a_wrong_value_is_named_with_its_source_and_what_was_expected(tmp_path: Path) -> None:
    assert _problem({"GOLDENPATH_RUNS__LEASE_SECONDS": "abc"}) == (
        "setting runs.lease_seconds (from GOLDENPATH_RUNS__LEASE_SECONDS): expected a valid number, unable to parse "
        "string as a number")
    assert "setting server.port (from GOLDENPATH_SERVER__PORT): expected a valid integer" in _problem(
        {"GOLDENPATH_SERVER__PORT": "x"})
    assert "setting server.port (from PORT): expected less than or equal to 65535" in _problem({"PORT": "70000"})
    config = tmp_path / "goldenpath.yaml"
    config.write_text("server: {max_body_bytes: lots}\nvault: {max_versions: -1}\n", encoding="utf-8")
    problem = _problem({}, config)
    assert problem.startswith("2 problems in the settings:\n")  # every problem at once, not the first only
    assert f"setting server.max_body_bytes (from {config}): expected a valid integer" in problem
    assert f"setting vault.max_versions (from {config}): expected greater than or equal to 0" in problem


def test_a_wrong_value_of_a_secret_is_never_echoed(tmp_path: Path) -> None:
    secret = "s3cr3t-value-0123456789"
    config = tmp_path / "goldenpath.yaml"
    config.write_text(f"vault: {{token: [{secret}]}}\ngithub: {{token: {{value: {secret}}}}}\n", encoding="utf-8")
    problem = _problem({"GOLDENPATH_VAULT__MAX_VERSIONS": secret, "GOLDENPATH_TOKEN": "ok-token",
                        "GOLDENPATH_AUTH__STATIC_TOKENS": secret}, config)
    assert "vault.token" in problem and "github.token" in problem and "vault.max_versions" in problem
    assert "auth.static_tokens (from GOLDENPATH_AUTH__STATIC_TOKENS)" in problem
    assert secret not in problem
    config.write_text(f"auth: {{token: [{secret}], static_tokens: [{{name: ci, token: {{t: {secret}}}}}]}}\n",
                      encoding="utf-8")
    problem = _problem({}, config)
    assert f"setting auth.token (from {config}): expected a valid string" in problem  # the operator's token
    assert f"setting auth.static_tokens[0].token (from {config}): expected a valid string" in problem
    assert secret not in problem
    # the file is not valid YAML once the secret is in it: the error says where, not the line (which holds it)
    config.write_text("auth: {token: ${API_TOKEN}}\n", encoding="utf-8")
    problem = _problem({"API_TOKEN": f"{secret}: x"}, config)
    assert problem.startswith(f"{config}: not valid YAML at line 1") and secret not in problem


def test_enums_are_checked_at_load(tmp_path: Path) -> None:
    assert "setting repositories.provider (from GOLDENPATH_REPOSITORIES__PROVIDER): expected 'local' or 'github'" in (
        _problem({"GOLDENPATH_REPOSITORIES__PROVIDER": "gitlab"}))
    assert "setting server.log_level (from GOLDENPATH_SERVER__LOG_LEVEL): expected a logging level" in _problem(
        {"GOLDENPATH_SERVER__LOG_LEVEL": "loud"})
    assert load_settings(None, {"GOLDENPATH_SERVER__LOG_LEVEL": "debug"}).log_level == "DEBUG"
    assert "setting policy.visibilities[1] (from GOLDENPATH_POLICY__VISIBILITIES): expected 'private', 'internal' " \
           "or 'public'" in _problem({"GOLDENPATH_POLICY__VISIBILITIES": "private,secret"})
    config = tmp_path / "goldenpath.yaml"
    config.write_text("kubernetes:\n  clusters:\n    eu: {mode: drect}\n    git: {mode: gitops}\n"
                      "  environments: {dev: [eu, git]}\n  pod_security: {dev: lax}\n  pod_security_default: open\n",
                      encoding="utf-8")
    problem = _problem({}, config)
    assert f"setting kubernetes.clusters.eu.mode (from {config}): expected 'direct' or 'gitops'" in problem
    assert f"setting kubernetes.clusters.git (from {config}): gitops mode needs a remote" in problem
    assert f"setting kubernetes.pod_security (from {config}): dev: expected a Pod Security level" in problem
    assert f"setting kubernetes.pod_security_default (from {config}): expected a Pod Security level" in problem


def test_what_fails_late_today_fails_at_load(tmp_path: Path) -> None:
    config = tmp_path / "goldenpath.yaml"
    config.write_text("kubernetes:\n  clusters:\n    eu: {mode: direct, in_cluster: true}\n", encoding="utf-8")
    assert _problem({}, config) == ("setting kubernetes.environments (default): cluster 'local' (for dev, staging, "
                                    "prod) is not in kubernetes.clusters")
    assert "setting policy.service_pattern (from GOLDENPATH_POLICY__SERVICE_PATTERN): not a regular expression" in (
        _problem({"GOLDENPATH_POLICY__SERVICE_PATTERN": "[a-"}))
    assert "setting policy.namespace_pattern (from GOLDENPATH_POLICY__NAMESPACE_PATTERN): unknown placeholder 'env'" \
        in _problem({"GOLDENPATH_POLICY__NAMESPACE_PATTERN": "{service}-{env}"})
    assert "unknown placeholder 'environment'" in _problem(
        {"GOLDENPATH_POLICY__SERVICE_ACCOUNT_PATTERN": "{service}-{environment}"})
    assert "setting auth.admin_groups (from GOLDENPATH_AUTH__ADMIN_GROUPS): not an entity ref" in _problem(
        {"GOLDENPATH_AUTH__ADMIN_GROUPS": "platform, not a group!"})


def test_unknown_keys_anywhere_are_named_with_their_source_and_the_nearest_known_key(tmp_path: Path) -> None:
    config = tmp_path / "goldenpath.yaml"
    config.write_text("server: {prot: 1}\nvalut: {}\nauth: {static_tokens: [{name: a, token: b, grups: [x]}]}\n"
                      "kubernetes:\n  clusters:\n    eu: {mode: direct, kubconfig: /k}\n  environments: {dev: [eu]}\n",
                      encoding="utf-8")
    problem = _problem({"GOLDENPATH_DATABASE__URI": "sqlite://"}, config)
    assert f"unknown setting server.prot (from {config}); did you mean server.port?" in problem
    assert "unknown setting database.uri (from GOLDENPATH_DATABASE__URI); did you mean database.url?" in problem
    assert f"unknown settings section 'valut' (from {config}); did you mean 'vault'?" in problem
    assert (f"unknown setting auth.static_tokens[0].grups (from {config}); did you mean "
            "auth.static_tokens[0].groups?") in problem
    assert (f"unknown setting kubernetes.clusters.eu.kubconfig (from {config}); did you mean "
            "kubernetes.clusters.eu.kubeconfig?") in problem
    with pytest.raises(SettingsError, match=r"^unknown settings section 'host' \(from configuration\)$"):
        settings_from_dict({"host": {}})  # server's keys are not sections of their own


def test_env_values_are_read_once_as_their_type(tmp_path: Path) -> None:
    settings = load_settings(None, {
        "GOLDENPATH_POLICY__ENVIRONMENTS": "dev,prod", "GOLDENPATH_AUTH__BACKSTAGE_PLUGINS": "scaffolder",
        "GOLDENPATH_VAULT__CREATE_KV_MOUNT": "on", "GOLDENPATH_VAULT__ENABLE_KUBERNETES_AUTH": " Yes ",
        "GOLDENPATH_POLICY__ALLOW_WORKLOAD_OVERRIDES": "0", "GOLDENPATH_RUNS__LEASE_SECONDS": "12.5",
        "GOLDENPATH_KUBERNETES__POD_SECURITY": "{dev: baseline}", "GOLDENPATH_GITHUB__APP_INSTALLATION_ID": "",
        "GOLDENPATH_AUTH__PLUGIN_GROUPS": '{"mcp-actions": "team-a, Group:Ops/SRE"}'})
    assert settings.policy.environments == ("dev", "prod") and settings.auth.backstage_plugins == ("scaffolder",)
    assert (settings.vault.create_kv_mount, settings.vault.enable_kubernetes_auth) == (True, True)
    assert settings.policy.allow_workload_overrides is False and settings.runs.lease_seconds == 12.5
    assert settings.kubernetes.pod_security_for("dev") == "baseline" and settings.github.app_installation_id is None
    assert settings.auth.plugin_groups == {"mcp-actions": ("group:default/team-a", "group:ops/sre")}
    assert "expected a valid boolean" in _problem({"GOLDENPATH_VAULT__CREATE_KV_MOUNT": "maybe"})
    assert "expected a mapping" in _problem({"GOLDENPATH_KUBERNETES__POD_SECURITY": "dev"})
    # a list in YAML is kept as given (never split again); a number in YAML where text is expected is that text
    config = tmp_path / "goldenpath.yaml"
    config.write_text("policy: {reserved_names: ['a,b', c]}\ngithub: {app_id: 123456}\n", encoding="utf-8")
    settings = load_settings(str(config), {})
    assert settings.policy.reserved_names == ("a,b", "c") and settings.github.app_id == "123456"


def test_every_default_is_in_the_schema_and_code_can_still_build_and_replace_settings() -> None:
    assert settings_from_dict({}) == Settings() == load_settings(None, {})
    token = StaticToken(name="ci", token="t" * 20, groups=("team-a",))
    settings = Settings(database_url="sqlite://", auth=AuthSettings(static_tokens=(token,)))
    assert settings.auth.static_tokens[0].groups == ("group:default/team-a",)
    moved = dataclasses.replace(settings, vault=dataclasses.replace(settings.vault, addr="http://127.0.0.1:8200"))
    assert (moved.vault.addr, moved.database_url, moved.auth) == ("http://127.0.0.1:8200", "sqlite://", settings.auth)
    assert [f.name for f in dataclasses.fields(Settings)][:6] == [
        "host", "port", "database_url", "max_body_bytes", "log_level", "public_url"]
    with pytest.raises(ValueError, match="mode"):  # what code builds is checked as well
        ClusterSettings(name="eu", mode="sideways")  # type: ignore[arg-type]
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.port = 1  # type: ignore[misc]
