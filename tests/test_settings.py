"""Configuration: YAML with ${ENV} substitution, short env overrides and GOLDENPATH_<SECTION>__<KEY>."""

from pathlib import Path

import pytest

from backend.settings import SettingsError, load_settings


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
