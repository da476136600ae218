"""The README's contract section is generated from the pyarrow schemas and must stay in sync."""

from pathlib import Path

from abplatform.contract import markdown_table


def test_readme_contract_is_current():
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    section = readme.split("<!-- contract:start -->")[1].split("<!-- contract:end -->")[0]
    assert section.strip() == markdown_table().strip()
