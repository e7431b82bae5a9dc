"""The command line: exit codes, stdout carries only data, one-line errors on stderr."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from speechvq import __version__
from speechvq.cli import main
from speechvq.config import Config, load_config


def test_config_prints_resolved_yaml(capsys):
    assert main(["config", "-c", "tiny", "--set", "model.quantizer.codebook_size=32"]) == 0
    printed = capsys.readouterr()
    assert printed.err == ""
    assert Config.from_dict(yaml.safe_load(printed.out)) == load_config("tiny", ["model.quantizer.codebook_size=32"])


def test_config_list(capsys):
    assert main(["config", "--list"]) == 0
    assert {"paper", "tiny"} <= set(capsys.readouterr().out.split())


@pytest.mark.parametrize("argv, message", [
    (["config", "--set", "model.quantizer.codebok_size=3"], "unknown config key model.quantizer.codebok_size"),
    (["config", "-c", "missing.yaml"], "no config file or preset named 'missing.yaml'"),
])
def test_user_errors_exit_1_with_one_line(capsys, argv, message):
    assert main(argv) == 1
    printed = capsys.readouterr()
    assert printed.out == ""
    lines = printed.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("speechvq: error: ") and message in lines[0]


def test_usage_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["no-such-command"])
    assert exit_info.value.code == 2
    with pytest.raises(SystemExit) as exit_info:
        main([])
    assert exit_info.value.code == 2


def test_interrupt_exits_130(monkeypatch, capsys):
    import speechvq.cli as cli

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "run_config", interrupted)
    assert main(["config"]) == 130
    assert "interrupted" in capsys.readouterr().err


def test_python_dash_m_and_console_script():
    result = subprocess.run([sys.executable, "-m", "speechvq", "--version"], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.strip() == f"speechvq {__version__}"
    script = subprocess.run([sys.executable, "-c", "import shutil, sys; print(shutil.which('speechvq', "
                             "path=__import__('os').path.dirname(sys.executable)))"], capture_output=True, text=True)
    assert script.stdout.strip().endswith("speechvq")
    help_run = subprocess.run([script.stdout.strip(), "--help"], capture_output=True, text=True)
    assert help_run.returncode == 0 and "config" in help_run.stdout
