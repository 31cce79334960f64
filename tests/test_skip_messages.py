"""A real-data test skipped on a machine without data says how to get the data."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize(
    ("folder", "command"),
    [
        ("uci-heart-disease", "metamed data fetch uci-heart --dest DIR"),
        ("support2", "metamed datasets support2"),  # no public byte-identical download
    ],
)
def test_skip_names_the_variable_and_the_command(need_dataset, monkeypatch, folder, command):
    monkeypatch.delenv("METAMED_DATA_DIR", raising=False)
    with pytest.raises(pytest.skip.Exception) as skipped:
        need_dataset(folder)
    reason = str(skipped.value)
    assert "METAMED_DATA_DIR" in reason
    assert command in reason
    assert "/work/" not in reason  # no path from the authors' machine


def test_missing_folder_fails_with_the_fetch_command(need_dataset, monkeypatch, tmp_path):
    monkeypatch.setenv("METAMED_DATA_DIR", str(tmp_path))
    with pytest.raises(pytest.fail.Exception, match=f"metamed data fetch uci-heart --dest {tmp_path}"):
        need_dataset("uci-heart-disease")
