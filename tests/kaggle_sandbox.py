"""The Kaggle sandbox for tests: a re-export of tools/twin/sandbox.py (where the mechanism lives, so that the Kaggle
twin runs pushed kernels the same way). See that module for what a notebook sees and what the sandbox needs."""
from tools.twin.sandbox import (  # noqa: F401
    ENVIRONMENTS, KAGGLE_ROOT, REPO, KaggleSandbox, SandboxProcess, SandboxRun, environment_problem, make_mount_point,
    sandbox_problem)
