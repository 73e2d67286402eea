"""Every setting a user can give is documented in README.md under its environment variable."""

from pathlib import Path

from stream_processors.config import setting_keys

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_every_setting_is_in_the_readme():
    missing = [f"DRIFTLINE_{key.upper()}" for key in setting_keys() if f"`DRIFTLINE_{key.upper()}`" not in README]
    assert missing == []
