"""Independent child processes run side by side: a test waits for its slowest child, not for
the sum of them (most of a child's time is starting Python and JAX on one core)."""

import subprocess
from collections.abc import Sequence


def run_side_by_side(
    commands: Sequence[Sequence[str]], envs: Sequence[dict | None] | None = None,
    cwd: object = None, timeout: float = 120,
) -> list[subprocess.CompletedProcess]:
    """Each command (with its env, or the parent's) started at once; their results (text
    stdout and stderr captured) in order, as ``subprocess.run`` would give them."""
    envs = envs if envs is not None else [None] * len(commands)
    procs = [subprocess.Popen(list(command), env=env, cwd=cwd, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for command, env in zip(commands, envs, strict=True)]
    results = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=timeout)
        results.append(subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr))
    return results
