"""Models by name: a Hub id, a local folder, or the built-in tiny model (`real_trl.tiny`).

Training and evaluation find and load models the same way. `model_problem` says in seconds, in one line,
why a name cannot be loaded: it asks the Hub once with a short timeout, or only the local cache when
offline, where `from_pretrained` would spend a minute in retries and end in a long traceback.
"""

from __future__ import annotations

import os
from pathlib import Path

import huggingface_hub
from huggingface_hub.errors import (
    GatedRepoError,
    HFValidationError,
    HTTPError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from real_trl.cli import UsageError

TINY_MODEL = "real_trl.tiny"  # built in memory by real_trl.tiny: the smoke recipe needs nothing on disk or the Hub
HUB_TIMEOUT_S = 5.0
OFFLINE_HINT = "to work offline, download the model once (or give a local folder) and set HF_HUB_OFFLINE=1"


def looks_local(name: str) -> bool:
    """A path the user meant as a folder on disk, not a Hub id (`org/name` or a bare legacy `name`)."""
    parent = Path(name).parent
    explicit = name.startswith(("/", ".", "~")) or name.count("/") > 1 or name.endswith("/")
    return explicit or (parent != Path(".") and parent.is_dir())


def model_problem(name: str, revision: str | None = None) -> str | None:
    """Why the model `name` (a Hub id, a local folder or `real_trl.tiny`) cannot be loaded, or None."""
    if name == TINY_MODEL:
        return None
    if name.startswith("real_trl."):  # not a Hub id either: answer without asking the Hub
        return f"unknown built-in model {name}: the one built in is {TINY_MODEL}"
    path = Path(name).expanduser()
    if path.is_dir():
        has_config = (path / "config.json").is_file() or (path / "adapter_config.json").is_file()
        return None if has_config else f"model folder {name} has no config.json: point to a saved model's folder"
    if looks_local(name) or path.exists():
        return f"model path {name} does not exist"
    if offline():
        if not in_local_cache(name, revision):
            return (
                f"model {name} is not in the local Hugging Face cache and HF_HUB_OFFLINE is set: download it "
                "with network access first, or give a local folder"
            )
        return None
    return _hub_problem(name, revision or "main")


def in_local_cache(name: str, revision: str | None = None) -> bool:
    """Whether the Hub model `name` has its config in the local Hugging Face cache."""
    return huggingface_hub.try_to_load_from_cache(name, "config.json", revision=revision or "main") is not None


def offline() -> bool:
    """HF_HUB_OFFLINE as set now: huggingface_hub reads it once, at import, and a recipe's `env:` may set it later."""
    from_env = os.environ.get("HF_HUB_OFFLINE", "").upper() in ("1", "ON", "YES", "TRUE")
    return huggingface_hub.constants.is_offline_mode() or from_env


def _hub_problem(name: str, revision: str) -> str | None:
    try:
        huggingface_hub.model_info(name, revision=revision, timeout=HUB_TIMEOUT_S)
    except (RepositoryNotFoundError, HFValidationError):
        return f"no model {name} on the Hugging Face Hub; check the id, or give a local folder"
    except RevisionNotFoundError:
        return f"model {name} has no revision {revision!r} on the Hugging Face Hub"
    except GatedRepoError:
        return f"model {name} is gated: accept its terms on the Hub and log in (`hf auth login`)"
    except (HTTPError, OSError) as error:  # no network, DNS, refused, timeout, proxy, a Hub outage
        if in_local_cache(name, revision):
            return None  # cached: from_pretrained will fall back to the cache
        return f"cannot reach the Hugging Face Hub to fetch model {name} ({type(error).__name__}); {OFFLINE_HINT}"
    return None


def load_tokenizer(name: str, *, revision: str | None = None, trust_remote_code: bool = False):
    """The tokenizer of model `name`, left-padded (generation appends to the right of the prompts).

    Training and evaluation render prompts with the model's chat template, so a tokenizer without one is
    refused; so is a name that cannot be loaded (UsageError, one line)."""
    if name == TINY_MODEL:
        from real_trl.tiny import build_tiny_tokenizer

        tokenizer = build_tiny_tokenizer()
    else:
        from transformers import AutoTokenizer

        problem = model_problem(name, revision)
        if problem is not None:
            raise UsageError(problem)
        try:
            tokenizer = AutoTokenizer.from_pretrained(name, revision=revision, trust_remote_code=trust_remote_code)
        except OSError as error:
            raise UsageError(
                f"cannot load a tokenizer from {name!r} ({' '.join(str(error).split())[:200]}): pass a checkpoint "
                "folder that holds the tokenizer files"
            ) from None
    if tokenizer.chat_template is None:
        raise UsageError(f"{name!r} has no chat template; training and evaluation render prompts with it")
    tokenizer.padding_side = "left"
    return tokenizer
