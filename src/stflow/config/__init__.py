"""The TOML run configuration, split by role.

- :mod:`.schema`: the sections and keys (:data:`SCHEMA`; ``[problem]``, ``[method]`` and
  compressor keys come from each kind's declaration), :func:`load_config` and
  :func:`resolve_config` (validation, defaults, paths relative to the config file);
- :mod:`.build`: the run's objects from a resolved config (:func:`build_run`,
  :func:`run_config`);
- :mod:`.preflight`: refusing a run this machine cannot hold or finish;
- :mod:`.docs`: ``docs/config.md``, generated from the declarations.

Every path in a config file is relative to the file's folder, ``py:path/to/file.py:ATTR``
references included.
"""

from __future__ import annotations

from .build import (
    Run,
    _load_init,
    build_method,
    build_problem,
    build_run,
    default_x0,
    resolve_auto_gains,
    run_config,
    time_model,
)
from .docs import config_markdown
from .preflight import MAX_STEPS, estimate_memory, preflight, total_memory
from .schema import GAIN_KEYS, MAX_STAGES, SCHEMA, load_config, resolve_config

__all__ = [
    "SCHEMA",
    "GAIN_KEYS",
    "load_config",
    "resolve_config",
    "build_run",
    "build_problem",
    "build_method",
    "default_x0",
    "Run",
    "run_config",
    "time_model",
    "config_markdown",
    "resolve_auto_gains",
    "estimate_memory",
    "total_memory",
    "preflight",
    "MAX_STEPS",
    "MAX_STAGES",
    "_load_init",
]
