"""A replica in a child process: runs one request and may be killed mid-run (GOLDENPATH_CRASHPOINTS).

python -m tests.survival.child CONFIG ACTION INPUT_JSON [IDEMPOTENCY_KEY]
"""

from __future__ import annotations

import json
import sys

from backend.app import build_services
from backend.services.runner import RunRequest
from backend.settings import load_settings
from tests.survival.actions import ALICE, registry


def main() -> None:
    config, action_id, data = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    key = sys.argv[4] if len(sys.argv) > 4 else None
    services = build_services(load_settings(config), registry=registry())
    record = services.runner.run(RunRequest(action_id=action_id, input=data, requester=ALICE, idempotency_key=key))
    print(json.dumps({"id": record["id"], "status": record["status"]}))


if __name__ == "__main__":
    main()
