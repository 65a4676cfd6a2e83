"""A GitHub REST emulator for tests, checked against GitHub's official OpenAPI description."""

from tests.github_emulator.emulator import GitHubEmulator
from tests.github_emulator.openapi_check import SpecCheck, SpecUnavailable

__all__ = ["GitHubEmulator", "SpecCheck", "SpecUnavailable"]
