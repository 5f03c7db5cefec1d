"""docs/examples: the architecture of docs/recipes.md written both ways (YAML and Python) is one recipe, and the
commands the docs give train it through the CLI."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import assemble

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "docs" / "examples"


def _python_example():
    spec = importlib.util.spec_from_file_location("stylegan2_projection", EXAMPLES / "stylegan2_projection.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.recipe()


def _keys(gan: assemble.GAN) -> dict[str, dict[str, tuple[int, ...]]]:
    return {net: {k: tuple(v.shape) for k, v in getattr(gan, net).state_dict().items()} for net in ("G", "D")}


def test_yaml_and_python_examples_are_one_recipe(tmp_path):
    from_yaml = yaml.safe_load((EXAMPLES / "stylegan2_projection.yaml").read_text())
    recipe = _python_example()
    a, b = assemble.build(from_yaml), recipe.build()
    assert _keys(a) == _keys(b) and list(_keys(a)["G"]) == list(_keys(b)["G"])
    for section in ("objective", "train", "data"):
        assert recipe.to_dict()[section] == from_yaml[section], section
    saved = assemble.build(str(recipe.save(tmp_path / "x.yaml")))
    assert _keys(saved) == _keys(b)
    # the hybrid: StyleGAN2's synthesis blocks in G, BigGAN's blocks and projection head in D
    assert type(a.G.synthesis.b64).__name__ == "StyleGAN2SynthesisBlock"
    assert type(a.D.head).__name__ == "ProjectionHead" and a.D.blocks["0"]["1"].__class__.__name__ == "SelfAttention"


def _docs_commands() -> list[str]:
    text = (ROOT / "docs" / "recipes.md").read_text()
    section = text.split("## One architecture written both ways", 1)[1]
    blocks = re.findall(r"```bash\n(.*?)```", section, re.S)
    return [line for line in blocks[0].splitlines() if line.strip()]


@pytest.mark.slow
def test_the_docs_commands_train_the_example(tmp_path):
    commands = _docs_commands()
    assert [c.split()[0] for c in commands] == ["ganforge", "python", "ganforge"]
    (tmp_path / "docs").symlink_to(ROOT / "docs")
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    for command in commands:
        args = shlex.split(command)
        if args[0] == "python":
            args[0] = sys.executable
        done = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, f"{command}:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    for run in ("stylegan2_projection", "stylegan2_projection_py"):
        summary = json.loads((tmp_path / "runs" / run / "summary.json").read_text())
        assert summary["steps"] == 300 and (tmp_path / "runs" / run / "samples.png").is_file()
        assert all(abs(v) < 1e3 for v in summary["losses"].values())
