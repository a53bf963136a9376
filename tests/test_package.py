"""Importing ``rag`` puts the model libraries offline before they load, unless the user chose otherwise."""

import os
import subprocess
import sys

PROBE = "import rag, huggingface_hub.constants as c; print(c.HF_HUB_OFFLINE)"


def hub_offline_after_import(env_value: str | None) -> str:
    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_OFFLINE"}
    if env_value is not None:
        env["HF_HUB_OFFLINE"] = env_value
    result = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_the_hub_is_offline_after_importing_rag_in_a_clean_environment():
    assert hub_offline_after_import(None) == "True"


def test_an_explicit_user_setting_is_kept():
    assert hub_offline_after_import("0") == "False"
