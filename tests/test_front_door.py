"""The README's two commands are the ones CI and users run."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "python -m pytest -q" in readme
    assert ci.rstrip().splitlines()[-1] == "python -m pytest -q"


def test_readme_main_job_uses_a_shipped_recipe_and_built_in_data():
    import assemble

    readme = (ROOT / "README.md").read_text()
    assert "ganforge train cdcgan_digits --out runs/digits" in readme
    recipe = assemble.load("cdcgan_digits")
    assert recipe["data"]["name"] == "digits"
