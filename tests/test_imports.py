"""Import boundaries the docs promise: the daemon starts without torch, and ``models/`` stands
alone on torch, torchaudio, transformers and numpy (so it can serve on a bare GPU machine)."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[1]

# The project's own dependencies that models/ must never need (torch, torchaudio, transformers
# and numpy are allowed; tqdm is not listed because transformers itself imports it).
NOT_FOR_MODELS = (
    "monitor",
    "training",
    "aiobotocore",
    "botocore",
    "m3u8",
    "av",
    "redis",
    "websockets",
    "structlog",
    "jsonschema",
    "prometheus_client",
    "aiohttp",
)


def _run(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_importing_the_daemon_and_the_commands_does_not_import_torch() -> None:
    code = (
        "import sys\n"
        "import monitor.runtime.daemon, monitor.runtime.pipeline, monitor.cli.main\n"
        "monitor.cli.main.build_parser()\n"
        "print(sorted({'torch', 'torchaudio', 'transformers'} & set(sys.modules)))\n"
    )
    assert _run(code) == "[]"


def test_every_models_module_imports_with_only_the_model_libraries() -> None:
    modules = sorted(
        info.name
        for info in pkgutil.walk_packages([str(ROOT / "models")], prefix="models.")
        if not info.name.startswith("models.default")
    )
    assert "models.classifier.ast" in modules and "models.denoiser.checkpoint" in modules
    code = (
        "import importlib, importlib.abc, sys\n"
        f"BLOCKED = {NOT_FOR_MODELS!r}\n"
        "class Block(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in BLOCKED:\n"
        "            raise ImportError(f'models/ must not import {name}')\n"
        "sys.meta_path.insert(0, Block())\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "print('ok')\n"
    )
    assert _run(code) == "ok"


RAY_BLOCKED = (
    "import importlib.abc, sys\n"
    "class Block(importlib.abc.MetaPathFinder):\n"
    "    def find_spec(self, name, path=None, target=None):\n"
    "        if name.split('.')[0] == 'ray':\n"
    "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
    "sys.meta_path.insert(0, Block())\n"
)


def test_the_daemon_and_the_commands_work_without_ray() -> None:
    code = RAY_BLOCKED + (
        "import monitor, monitor.runtime.daemon, monitor.cli.main, monitor.cli.run\n"
        "import monitor.cluster.settings, monitor.cluster.unit, monitor.config.loader\n"
        "monitor.cli.main.build_parser()\n"
        "monitor.config.loader.load_config(None, env={})\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'ray'))\n"
    )
    assert _run(code) == "[]"


def test_replay_cluster_without_ray_is_one_clear_line(tmp_path: Path) -> None:
    code = RAY_BLOCKED + (
        "from monitor.cli.main import main\n"
        "sys.exit(main(['replay', '--feed', 'rpi_bush_point', '--start', '2024-06-01T00:00:00Z',"
        f" '--end', '2024-06-01T01:00:00Z', '--out', {str(tmp_path)!r}, '--cluster', 'local']))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=False
    )
    assert done.returncode == 2
    assert done.stderr.strip() == "hydromon: --cluster needs Ray: pip install 'hydromon[cluster]'"
