"""LiteLLM proxy as a peer: its own venv (installed once, cached), config and command line.

LiteLLM is not a dependency of Strata; the benchmark installs it into
``.strata/bench/litellm-venv`` the first time it is needed and reuses it afterwards.
A marker file written after a successful install tells a cached venv from a broken one.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

DEFAULT_VENV = Path(".strata/bench/litellm-venv")
DEFAULT_SPEC = "litellm[proxy]"
MASTER_KEY = "sk-bench-master"
_MARKER = ".strata-installed"


@dataclass(frozen=True, slots=True)
class LiteLLMEnv:
    venv: Path
    version: str

    @property
    def litellm(self) -> Path:
        return self.venv / "bin" / "litellm"


class InstallFailed(RuntimeError):
    pass


def _version(venv: Path) -> str:
    out = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-c",
            "import importlib.metadata as m; print(m.version('litellm'))",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if out.returncode != 0:
        raise InstallFailed(f"litellm is not importable in {venv}: {out.stderr.strip()[-500:]}")
    return out.stdout.strip()


def ensure(
    venv: Path = DEFAULT_VENV, spec: str = DEFAULT_SPEC, log: Path | None = None
) -> LiteLLMEnv:
    """The cached venv, or a fresh install of ``spec`` (prints progress; minutes)."""
    venv = venv.absolute()
    marker = venv / _MARKER
    if marker.exists() and (venv / "bin" / "litellm").exists():
        return LiteLLMEnv(venv, marker.read_text().strip() or _version(venv))
    log = log or venv.parent / "litellm-install.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    print(
        f"installing {spec} into {venv} (first run only, usually 1-3 minutes; log {log})",
        flush=True,
    )
    with open(log, "w") as out:
        steps = [
            [sys.executable, "-m", "venv", "--clear", str(venv)],
            [str(venv / "bin" / "python"), "-m", "pip", "install", "--upgrade", "pip"],
            [str(venv / "bin" / "python"), "-m", "pip", "install", spec],
        ]
        for cmd in steps:
            print("  $ " + " ".join(cmd), flush=True)
            out.write("$ " + " ".join(cmd) + "\n")
            out.flush()
            proc = subprocess.Popen(
                cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
            )
            assert proc.stdout is not None
            collected = 0
            for line in proc.stdout:
                out.write(line)
                if line.startswith("Collecting"):
                    collected += 1
                    if collected % 20 == 0:
                        print(f"    ... {collected} packages resolved", flush=True)
                elif line.startswith(("Successfully installed", "ERROR")):
                    print("    " + line.strip()[:200], flush=True)
            if proc.wait() != 0:
                raise InstallFailed(f"`{' '.join(cmd)}` failed (exit {proc.returncode}); see {log}")
    version = _version(venv)
    marker.write_text(version + "\n")
    print(f"  litellm {version} installed", flush=True)
    return LiteLLMEnv(venv, version)


def write_config(path: Path, upstream_v1: str, model: str, chunks: int) -> None:
    """The measurements.md §5 config; ``x-fake-chunks`` rides along as an extra header,
    since LiteLLM does not forward client headers upstream by default."""
    path.write_text(
        "model_list:\n"
        f"  - model_name: {model}\n"
        "    litellm_params:\n"
        f"      model: openai/{model}\n"
        f"      api_base: {upstream_v1}\n"
        "      api_key: sk-upstream\n"
        "      extra_headers:\n"
        f'        x-fake-chunks: "{chunks}"\n'
        "general_settings:\n"
        f"  master_key: {MASTER_KEY}\n"
        "litellm_settings:\n"
        "  telemetry: false\n"
    )


def command(env: LiteLLMEnv, config: Path, port: int) -> tuple[list[str], dict[str, str]]:
    cmd = [
        str(env.litellm),
        "--config",
        str(config),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--num_workers",
        "1",
    ]
    environ = {
        **os.environ,
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "LITELLM_LOG": "ERROR",
        "PATH": f"{env.venv / 'bin'}:{os.environ.get('PATH', '')}",
    }
    environ.pop("VIRTUAL_ENV", None)
    environ.pop("PYTHONPATH", None)
    return cmd, environ


if __name__ == "__main__":  # `python -m bench.tier1_bench.litellm_env`: install only
    print(ensure())
