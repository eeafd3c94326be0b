"""What the local stack writes for `domainflow doctor`: its sandboxes' settings, no secret."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from domainflow.cli.stack import public_settings, write_state


def test_the_state_keeps_the_sandboxes_and_drops_secrets(tmp_path: Path) -> None:
    env = {
        "DOMAINFLOW_DOH_URL": "https://127.0.0.1:8443/dns-query",
        "AWS_ACCESS_KEY_ID": "testing",  # the stack's own dummy for moto
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "real-token",
        "DOMAINFLOW_API_DATABASE_URL": "postgresql://app:s3cret@db:5432/domainflow_api",
        "DOMAINFLOW_PROVISIONER_DATABASE_URL": "postgresql://postgres@127.0.0.1/x",
        "DOMAINFLOW_SMTP_PASSWORD": "hunter2",
        "HOME": "/root",
    }
    chosen = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    kept = public_settings(env, chosen)
    assert kept == {
        "DOMAINFLOW_DOH_URL": "https://127.0.0.1:8443/dns-query",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "DOMAINFLOW_PROVISIONER_DATABASE_URL": "postgresql://postgres@127.0.0.1/x",
    }
    path = tmp_path / "stack.json"
    path.write_text("{}")
    path.chmod(0o644)  # an older run's file
    write_state(path, kept)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text()) == kept
